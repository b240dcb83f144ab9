"""Large values through Python and Go deployments: Big's request (a JSON
string of megabytes) comes as a claim check, goes to Go's Noop through
a handle and back, and leaves reversed, down a YAML edge to Go."""

from sluice import serve


@serve.deployment
class Big:
    def __init__(self, noop):
        self.noop = noop

    async def __call__(self, s):
        echoed = await self.noop.remote({"data": s})  # JSON: Noop takes JSON
        return {"data": echoed["data"][::-1]}


app = Big.bind(serve.get_deployment_handle("Noop"))
