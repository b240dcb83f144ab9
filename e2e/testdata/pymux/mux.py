"""Models multiplexed over two replicas: a replica loads a model the
first time it is called for it (an id starting "broken" fails to load)
and says which model it served, from which process."""

import asyncio
import os

from sluice import serve


@serve.deployment(num_replicas=2, max_ongoing_requests=32)
class Mux:
    @serve.multiplexed(max_num_models_per_replica=4)
    async def get_model(self, model_id):
        await asyncio.sleep(0.05)
        if model_id.startswith("broken"):
            raise FileNotFoundError(f"no weights for {model_id}")
        return model_id.upper()

    async def __call__(self, _body):
        model = await self.get_model()
        return {"model_id": serve.get_multiplexed_model_id(), "model": model, "pid": os.getpid()}


app = Mux.bind()
