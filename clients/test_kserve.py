"""The KServe Python SDK (kserve.InferenceRESTClient and
kserve.InferenceGRPCClient with kserve.InferRequest / kserve.InferInput),
unmodified, against the Sluice gateway.

Each check lives in kserve_cases.py and runs in a child interpreter:
kserve cannot be imported next to tritonclient.grpc (both register the
"inference" protobuf package; kserve/kserve#3099).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("kserve_cases.py")
SKIPPED = 77


def run_case(name, http_addr, grpc_addr):
    env = dict(os.environ, SLUICE_HTTP=http_addr, SLUICE_GRPC=grpc_addr, PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.run(
            [sys.executable, str(CASES), name], env=env, capture_output=True, text=True, timeout=50
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"kserve case {name} did not finish in {err.timeout} s\n{err.stderr or ''}", pytrace=False)
    if proc.returncode == SKIPPED:
        lines = proc.stdout.strip().splitlines()
        pytest.skip(lines[-1] if lines else f"kserve case {name} skipped")
    if proc.returncode != 0:
        pytest.fail(
            f"kserve case {name} failed (exit {proc.returncode})\n"
            f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}",
            pytrace=False,
        )


@pytest.fixture
def case(http_addr, grpc_addr):
    return lambda name: run_case(name, http_addr, grpc_addr)


def test_rest_health(case):
    case("rest_health")


def test_rest_infer_doubler_binary(case):
    case("rest_infer_doubler_binary")


def test_rest_infer_doubler_json(case):
    case("rest_infer_doubler_json")


def test_rest_infer_adder64_json(case):
    case("rest_infer_adder64_json")


def test_rest_unknown_model(case):
    case("rest_unknown_model")


def test_grpc_health(case):
    case("grpc_health")


def test_grpc_infer_doubler(case):
    case("grpc_infer_doubler")


def test_grpc_infer_doubler_pinned_version(case):
    case("grpc_infer_doubler_pinned_version")


def test_grpc_unknown_model(case):
    case("grpc_unknown_model")


def test_every_case_has_a_test():
    """A case added to kserve_cases.py without a test here would never run."""
    source = CASES.read_text()
    cases = [line.split("def ", 1)[1].split("(")[0] for line in source.splitlines() if line.startswith("async def ")]
    missing = [c for c in cases if "test_" + c not in globals()]
    assert not missing, f"kserve_cases.py cases without a test: {missing}"
