"""A model pipeline front door: endpoints over the model registry that
appear as versions are published, with no redeploy.

    GET  /predict                          the pipelines, by model name
    GET  /predict/{model}                  the model's versions and aliases, each with its endpoint
    POST /predict/{model}/{version}        {"inputs": [[...], ...]}: the pipeline's answer for each

{version} is a number or an alias. The pipeline is the model name's
(pipelines.PIPELINES); the version is loaded from the registry the first
time it is asked for, and the replica keeps the four most recently used.
An HTTP ingress (its __call__ takes a Request), deployed with:

    sluice models push line examples/models/affine-v1
    sluice deploy --python examples/python/pipeline --import-path app:app --name predict --route-prefix /predict
    curl -d '{"inputs": [[3]]}' 127.0.0.1:8000/predict/line/1         # y = 2x + 1 = 7
    sluice models push line examples/models/affine-v2
    curl -d '{"inputs": [[3]]}' 127.0.0.1:8000/predict/line/2         # y = 3x + 1 = 10
"""

from __future__ import annotations

import json
from typing import Any

from pipelines import PIPELINES, Pipeline
from sluice.protocol import InvalidArgument, NotFound
from sluice.serve import Request, models
from sluice.serve.multiplex import check_model_id

from sluice import serve

ROUTE_PREFIX = "/predict"


class Predict:
    @serve.multiplexed(max_num_models_per_replica=4)
    async def pipeline(self, ref: str) -> Pipeline:
        name = ref.partition("@")[0]
        cls = PIPELINES.get(name)
        if cls is None:
            raise NotFound(f"no pipeline for model {name} (pipelines: {', '.join(sorted(PIPELINES))})")
        return cls(await models.fetch(ref))

    async def __call__(self, request: Request) -> Any:
        parts = [p for p in request.url.path.split("/") if p]
        match (request.method, parts):
            case ("GET", []):
                return {"pipelines": sorted(PIPELINES)}
            case ("GET", [model]):
                return await self.describe(model)
            case ("POST", [model, version]):
                return await self.predict(model, version, await request.body())
        raise NotFound(f"no endpoint {request.method} {ROUTE_PREFIX}{request.url.path}")

    async def describe(self, model: str) -> dict[str, Any]:
        if model not in PIPELINES:
            raise NotFound(f"no pipeline for model {model} (pipelines: {', '.join(sorted(PIPELINES))})")
        vs = await models.versions(check_model_id(model))
        return {
            "model": vs.model,
            "versions": [{"version": v, "endpoint": f"{ROUTE_PREFIX}/{model}/{v}"} for v, _ in vs.versions],
            "aliases": vs.aliases,
        }

    async def predict(self, model: str, version: str, body: bytes) -> dict[str, Any]:
        ref = check_model_id(f"{model}@{version}")
        try:
            inputs = json.loads(body)["inputs"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f'the body is not {{"inputs": [[...], ...]}}: {exc}') from exc
        if not isinstance(inputs, list) or not all(isinstance(r, list) for r in inputs):
            raise InvalidArgument('"inputs" is not a list of lists of numbers')
        p = await self.pipeline(ref)
        return {"model": model, "version": p.version.version, "outputs": p(inputs)}


app = serve.deployment(Predict).bind()
