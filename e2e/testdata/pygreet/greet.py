"""A two-deployment Python application: the ingress takes the JSON body
and calls Upper through a handle."""

from sluice import serve


@serve.deployment
class Upper:
    def __call__(self, text: str) -> str:
        return text.upper()


@serve.deployment
class Greeter:
    def __init__(self, upper, greeting: str) -> None:
        self.upper = upper
        self.greeting = greeting

    async def __call__(self, body: dict) -> dict:
        return {"greeting": f"{self.greeting} {await self.upper.remote(body['name'])}"}


app = Greeter.bind(Upper.bind(), "hello")
