"""tritonclient (HTTP and gRPC) against a gateway that requires bearer
tokens: the headers it passes reach the gateway's authorisation.

Runs only under `scripts/pyclients.sh auth`, which starts `sluice dev`
with an auth file holding the tokens below (SLUICE_AUTH_SUITE=1); the
ordinary runs serve without authentication and skip this file.
"""

import os

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.skipif(
    os.environ.get("SLUICE_AUTH_SUITE") != "1",
    reason="needs a gateway with an auth file: scripts/pyclients.sh auth",
)

# The tokens `scripts/pyclients.sh auth` writes the hashes of, by scope.
TOKENS = {"infer:doubler": "pyclients-doubler", "infer:upper": "pyclients-upper", "read": "pyclients-read"}


def bearer(token):
    return {"authorization": "Bearer " + token}


@pytest.fixture(params=["http", "grpc"])
def kind(request):
    return request.param


# The CA of the gateway's certificate: `scripts/pyclients.sh auth` serves TLS.
CA = os.environ.get("SLUICE_CA_FILE")


def connect(kind, http_addr, grpc_addr, ca):
    """A client of kind; over TLS trusting ca when the gateway serves TLS
    (ca None: the system's CAs)."""
    if kind == "http":
        tls = {"ssl": True, "ssl_options": {"ca_certs": ca} if ca else None} if CA else {}
        return httpclient.InferenceServerClient(http_addr, connection_timeout=10.0, network_timeout=30.0, **tls)
    tls = {"ssl": True, "root_certificates": ca} if CA else {}
    return grpcclient.InferenceServerClient(grpc_addr, **tls)


@pytest.fixture
def client(kind, http_addr, grpc_addr):
    c = connect(kind, http_addr, grpc_addr, CA)
    yield c
    c.close()


@pytest.mark.skipif(not CA, reason="the gateway serves TLS under scripts/pyclients.sh auth")
def test_untrusted_certificate_refused(kind, http_addr, grpc_addr):
    # Trusting the system's CAs only: the handshake fails.
    c = connect(kind, http_addr, grpc_addr, None)
    try:
        with pytest.raises(Exception) as exc:
            assert not c.is_server_live()
        assert "certificate" in str(exc.value).lower() or "unavailable" in str(exc.value).lower(), exc.value
    finally:
        c.close()


def doubler(kind, client, headers):
    mod = httpclient if kind == "http" else grpcclient
    x = mod.InferInput("INPUT0", [2], "FP32")
    x.set_data_from_numpy(np.array([1, 2.5], dtype=np.float32))
    # A copy: the HTTP client adds its own headers to the dict it is given.
    return client.infer("doubler", [x], headers=dict(headers) if headers else None)


def status(kind, code):
    return {"http": {401: "401", 403: "403"}, "grpc": {401: "StatusCode.UNAUTHENTICATED", 403: "StatusCode.PERMISSION_DENIED"}}[kind][code]


def test_health_is_open(client):
    assert client.is_server_live()
    assert client.is_server_ready()


@pytest.mark.parametrize(
    "headers, code",
    [(None, 401), (bearer("wrong"), 401), (bearer(TOKENS["infer:upper"]), 403), (bearer(TOKENS["read"]), 403)],
    ids=["no token", "wrong token", "another app's", "read only"],
)
def test_infer_refused(kind, client, headers, code):
    with pytest.raises(InferenceServerException) as exc:
        doubler(kind, client, headers)
    err = exc.value
    assert err.status() == status(kind, code), f"status {err.status()!r}: {err}"
    if code == 403:
        assert "infer:doubler" in err.message(), err


def test_infer_with_scope(kind, client):
    out = doubler(kind, client, bearer(TOKENS["infer:doubler"])).as_numpy("OUTPUT0")
    assert out.tolist() == [2, 5]


def test_metadata_needs_read(kind, client):
    with pytest.raises(InferenceServerException) as exc:
        client.get_model_metadata("doubler", headers=bearer(TOKENS["infer:doubler"]))
    assert exc.value.status() == status(kind, 403), exc.value
    md = client.get_model_metadata("doubler", headers=bearer(TOKENS["read"]))
    name = md["name"] if kind == "http" else md.name
    assert name == "doubler"


# The KServe SDK passes headers too: its REST client (httpx) and its gRPC
# client, over TLS trusting the gateway's CA. Each call runs in a child
# interpreter (kserve_auth.py): kserve cannot be imported next to
# tritonclient.grpc (both register the "inference" protobuf package).


def kserve_call(kind, http_addr, grpc_addr, token):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("kserve_auth.py")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, str(script), kind, http_addr, grpc_addr, token or ""],
                          env=env, capture_output=True, text=True, timeout=50)  # fmt: skip
    assert proc.returncode == 0, f"kserve_auth.py exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "token, code",
    [(None, 401), ("wrong", 401), (TOKENS["infer:upper"], 403)],
    ids=["no token", "wrong token", "another app's"],
)
def test_kserve_infer_refused(kind, http_addr, grpc_addr, token, code):
    got = kserve_call(kind, http_addr, grpc_addr, token)
    assert got.get("status") == status(kind, code), got


def test_kserve_infer_with_scope(kind, http_addr, grpc_addr):
    got = kserve_call(kind, http_addr, grpc_addr, TOKENS["infer:doubler"])
    assert got.get("output") == [2, 5], got
