"""sluice.serve.auth against a real `sluice dev` serving TLS and
requiring bearer tokens: the CA of SLUICE_CA_FILE is trusted, SLUICE_TOKEN
is sent; without the CA the handshake fails, without the token the
gateway answers 401."""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import _build
from sluice.serve.auth import GatewayAccess

_SECURE = ["--tls-cert", "server.pem", "--tls-key", "server-key.pem", "--auth-file", "tokens.yaml"]
_READY = re.compile(r"^sluice dev: REST on (https://\S+),", re.M)


def _openssl(args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args.split()], cwd=cwd, check=True, capture_output=True)


def _certificates(d: Path) -> None:
    """ca.pem, and server.pem/server-key.pem for 127.0.0.1 signed by it."""
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    _openssl(f"req -x509 {ec} -days 1 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem", cwd=d)
    _openssl(f"req {ec} -subj /CN=127.0.0.1 -keyout server-key.pem -out server.csr", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile ext.cnf"
        " -out server.pem",
        cwd=d,
    )


@pytest.fixture(scope="module")
def secure_dev() -> Iterator[tuple[str, Path]]:
    """A `sluice dev` with TLS and a token file: its https URL and the
    directory of ca.pem."""
    with tempfile.TemporaryDirectory(prefix="sluice-pytest-tls-") as tmp:
        d = Path(tmp)
        _certificates(d)
        digest = hashlib.sha256(b"py-secret").hexdigest()
        (d / "tokens.yaml").write_text(f"tokens:\n  - name: py\n    token_sha256: {digest}\n    scopes: [read]\n")
        binary = os.environ.get("SLUICE_BIN") or _build(d)
        log = d / "dev.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [binary, "dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--builtin=false", *_SECURE],
                cwd=d,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 90
            while not (m := _READY.search(log.read_text())):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sluice dev did not start:\n{log.read_text()[-4000:]}")
                time.sleep(0.1)
            yield m.group(1), d
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _get(access: GatewayAccess, path: str) -> tuple[int, str]:
    req = urllib.request.Request(access.url + path, headers=access.headers())
    try:
        with urllib.request.urlopen(req, timeout=10, context=access.ssl_context()) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_token_and_ca_from_env(secure_dev: tuple[str, Path]) -> None:
    url, d = secure_dev
    env = {"SLUICE_ADDR": url, "SLUICE_TOKEN": "py-secret", "SLUICE_CA_FILE": str(d / "ca.pem")}
    status, body = _get(GatewayAccess.from_env(env), "/sluice/v1/apps")
    assert status == 200, body
    assert "applications" in json.loads(body) or json.loads(body) == {}


def test_no_token_is_401(secure_dev: tuple[str, Path]) -> None:
    url, d = secure_dev
    status, body = _get(
        GatewayAccess.from_env({"SLUICE_ADDR": url, "SLUICE_CA_FILE": str(d / "ca.pem")}), "/sluice/v1/apps"
    )
    assert status == 401
    assert json.loads(body)["code"] == "unauthenticated"


def test_untrusted_ca_fails_the_handshake(secure_dev: tuple[str, Path]) -> None:
    url, _ = secure_dev
    with pytest.raises(urllib.error.URLError) as info:
        _get(GatewayAccess.from_env({"SLUICE_ADDR": url, "SLUICE_TOKEN": "py-secret"}), "/sluice/v1/apps")
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)


def test_from_env_defaults_and_errors() -> None:
    a = GatewayAccess.from_env({})
    assert a.url == "http://127.0.0.1:8000"
    assert a.headers() == {}
    assert a.ssl_context() is None
    assert GatewayAccess.from_env({"SLUICE_TOKEN": " t \n"}).headers() == {"authorization": "Bearer t"}
    with pytest.raises(ValueError, match="needs an https"):
        GatewayAccess.from_env({"SLUICE_ADDR": "gw:8000", "SLUICE_CA_FILE": "/ca.pem"})
    with pytest.raises(ValueError, match="go together"):
        GatewayAccess.from_env({"SLUICE_ADDR": "https://gw", "SLUICE_CLIENT_CERT_FILE": "/c.pem"})
    with pytest.raises(ValueError, match="want http"):
        GatewayAccess(url="ftp://gw")
