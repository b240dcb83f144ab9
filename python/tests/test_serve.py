"""The serve API over the runtime, on a broker: a graph bound with
.bind(), served with serve.run, called through handles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from sluice import serve
from sluice.protocol import NotFound, SluiceError
from sluice.serve import DeploymentHandle


class Upper:
    def __call__(self, text: str) -> str:  # synchronous: runs in a thread
        if text == "missing":
            raise NotFound("no such text")
        return text.upper()


class Greeter:
    def __init__(self, upper: DeploymentHandle, suffix: str) -> None:
        self.upper = upper
        self.suffix = suffix

    async def __call__(self, body: dict[str, str]) -> dict[str, str]:
        shout = await self.upper.remote(body["name"])
        return {"greeting": f"hello {shout}{self.suffix}"}


# mypy keeps a decorated class's own type (python/mypy#3135): classes are
# wrapped by a call here, functions decorated.
UpperDeployment = serve.deployment(Upper)
GreeterDeployment = serve.deployment(max_ongoing_requests=8)(Greeter)


@serve.deployment
async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@pytest.fixture
def app_name() -> Iterator[str]:
    yield "py-serve-" + uuid.uuid4().hex[:8]
    serve.shutdown()


def test_a_graph_answers_through_handles(brokers: list[str], app_name: str) -> None:
    handle = serve.run(GreeterDeployment.bind(UpperDeployment.bind(), "!"), name=app_name, brokers=brokers)
    assert handle.remote({"name": "ada"}).result(timeout_s=30) == {"greeting": "hello ADA!"}
    responses = [handle.remote({"name": f"n{i}"}) for i in range(8)]
    assert [r.result(timeout_s=30)["greeting"] for r in responses] == [f"hello N{i}!" for i in range(8)]
    with pytest.raises(SluiceError) as exc:
        handle.remote({"name": "missing"}).result(timeout_s=30)
    assert (exc.value.code, exc.value.message) == ("not_found", "no such text")
    with pytest.raises(SluiceError) as exc:
        handle.remote({"nom": "x"}).result(timeout_s=30)
    assert exc.value.code == "internal" and "KeyError" in exc.value.message


def test_a_function_deployment_and_a_response_passed_on(brokers: list[str], app_name: str) -> None:
    handle = serve.run(double.bind(), name=app_name, brokers=brokers)
    first = handle.remote(3)
    assert handle.remote(first).result(timeout_s=30) == 12, "a response passed to remote() is resolved first"
