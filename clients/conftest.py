"""Shared fixtures: where the gateway under test listens.

SLUICE_HTTP and SLUICE_GRPC are host:port (no scheme), as
`scripts/pyclients.sh test HTTP_ADDR GRPC_ADDR` sets them.
"""

import os

import pytest


def _addr(var):
    value = os.environ.get(var, "").strip()
    if not value:
        pytest.fail(
            f"{var} is not set: run `scripts/pyclients.sh test HTTP_ADDR GRPC_ADDR` "
            "or `scripts/pyclients.sh run`",
            pytrace=False,
        )
    if "://" in value:
        pytest.fail(f"{var}={value!r} must be host:port, without a scheme", pytrace=False)
    return value


@pytest.fixture(scope="session")
def http_addr():
    return _addr("SLUICE_HTTP")


@pytest.fixture(scope="session")
def grpc_addr():
    return _addr("SLUICE_GRPC")
