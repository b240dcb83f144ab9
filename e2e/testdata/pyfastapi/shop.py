# A FastAPI app as an application's HTTP ingress (@serve.ingress): routes
# on the class's methods, path and query parameters, JSON bodies, status
# codes, headers, a streamed response; it calls a deployment by handle.
import asyncio

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from sluice import serve
from sluice.serve.handle import DeploymentHandle

api = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@serve.deployment
class Tax:
    def __call__(self, price: float) -> float:
        return round(price * 1.2, 2)


@serve.deployment
@serve.ingress(api)
class Shop:
    def __init__(self, tax: DeploymentHandle, currency: str):
        self.tax = tax
        self.currency = currency

    @api.get("/items/{item_id}")
    def item(self, item_id: int, detail: bool = False) -> dict:
        if item_id == 0:
            raise HTTPException(404, "no item 0")
        return {"id": item_id, "detail": detail, "currency": self.currency}

    @api.post("/items", status_code=201)
    async def create(self, item: Item, response: Response) -> dict:
        response.headers["x-item"] = item.name
        return {"name": item.name, "gross": await self.tax.remote(item.price), "currency": self.currency}

    @api.get("/count")
    def count(self, n: int, pause: float = 0.3) -> StreamingResponse:
        async def numbers():
            for i in range(n):
                yield f"{i}\n"
                await asyncio.sleep(pause)

        return StreamingResponse(numbers(), media_type="text/plain", headers={"x-count": str(n)})


app = Shop.bind(Tax.bind(), "EUR")
