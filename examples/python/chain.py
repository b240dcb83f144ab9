# Two models in a chain: Adder(1), then Multiplier(2). The ingress hands
# the Adder's response, unresolved, to the Multiplier: it is sent on when
# it settles. Ray Serve code; only the imports name sluice.
#
#   python chain.py                       # deploys, then (5 + 1) * 2
#   curl -d 5 localhost:8000/py/chain     # under `make run`
from sluice import serve
from sluice.serve.handle import DeploymentHandle, DeploymentResponse


@serve.deployment
class Adder:
    def __init__(self, increment: int):
        self.increment = increment

    def __call__(self, value: int) -> int:
        return value + self.increment


@serve.deployment
class Multiplier:
    def __init__(self, factor: int):
        self.factor = factor

    def __call__(self, value: int) -> int:
        return value * self.factor


@serve.deployment
class Ingress:
    def __init__(self, adder: DeploymentHandle, multiplier: DeploymentHandle):
        self.adder = adder
        self.multiplier = multiplier

    async def __call__(self, value: int) -> int:
        added: DeploymentResponse = self.adder.remote(value)
        # No await: the multiplier gets the adder's result when it comes.
        multiplied: DeploymentResponse = self.multiplier.remote(added)
        return await multiplied


app = Ingress.bind(Adder.bind(increment=1), Multiplier.bind(factor=2))

if __name__ == "__main__":
    handle: DeploymentHandle = serve.run(app)
    result = handle.remote(5).result()
    assert result == 12, f"(5 + 1) * 2 is 12, not {result}"
    print(result)
