from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator

import pytest

from broker import broker

logging.basicConfig(level=os.environ.get("SLUICE_TEST_LOG", "WARNING"))

_names = itertools.count()


@pytest.fixture(scope="session")
def brokers() -> Iterator[list[str]]:
    with broker() as addrs:
        yield addrs


@pytest.fixture
def uniq(request: pytest.FixtureRequest) -> Uniq:
    return Uniq(request.node.name)


class Uniq:
    """Names new for the run: a test's topics and groups."""

    def __init__(self, test: str) -> None:
        self.prefix = "py-" + "".join(c if c.isalnum() or c == "-" else "-" for c in test)[:60]

    def __call__(self, name: str) -> str:
        return f"{self.prefix}-{name}-{os.getpid()}-{next(_names)}"
