# A streaming deployment called through a streaming handle: the caller
# yields each number as the generator yields it. Ray Serve code; only
# the imports name sluice.
#
#   python stream.py                          # deploys, then prints 0..4
#   curl -N -d 5 localhost:8000/py/stream     # under `make run`: NDJSON
import time
from collections.abc import AsyncIterator, Iterator

from sluice import serve
from sluice.serve.handle import DeploymentHandle


@serve.deployment
class Counter:
    def count(self, limit: int) -> Iterator[int]:
        for i in range(limit):
            yield i
            time.sleep(0.2)  # a slow producer: each number is out before the next is made


@serve.deployment
class Caller:
    def __init__(self, counter: DeploymentHandle):
        self.counter = counter.options(stream=True)

    async def __call__(self, limit: int) -> AsyncIterator[int]:
        async for i in self.counter.count.remote(limit):
            yield i


app = Caller.bind(Counter.bind())

if __name__ == "__main__":
    handle: DeploymentHandle = serve.run(app).options(stream=True)
    for number in handle.remote(5):
        print(number)
