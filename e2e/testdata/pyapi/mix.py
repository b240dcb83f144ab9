"""Python deployments in a graph with Go ones (the stock binary's chain
example): AddOne is called by Go's Ingress through a handle and calls
Go's Multiplier by name; Tail is the end of a YAML edge from Go. Scaled
is bound by no graph: a spec gives its constructor's arguments."""

from sluice import serve


@serve.deployment
class AddOne:
    def __init__(self, multiplier):
        self.multiplier = multiplier

    async def __call__(self, x):
        return await self.multiplier.remote(x + 1)


@serve.deployment
def Tail(x):
    return {"result": x, "by": "python"}


@serve.deployment
class Scaled:
    def __init__(self, inner, factor: int = 2):
        self.inner, self.factor = inner, factor

    async def __call__(self, x):
        return self.factor * await self.inner.remote(x)


app = AddOne.bind(serve.get_deployment_handle("Multiplier"))
