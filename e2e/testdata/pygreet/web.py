"""An HTTP ingress, as Ray Serve writes one: __call__ takes the request
(Starlette's when installed, else sluice.serve.Request with its names)."""

from greet import Upper
from sluice import serve
from sluice.serve import Request


@serve.deployment
class Hello:
    def __init__(self, upper) -> None:
        self.upper = upper

    async def __call__(self, request: Request) -> str:
        body = await request.json()
        return f"{request.method} {request.url.path}: hola {await self.upper.remote(body['name'])}"


app = Hello.bind(Upper.bind())
