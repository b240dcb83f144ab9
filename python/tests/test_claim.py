"""Claim checks without a broker: the sl-claim reference, the directory
store's layout (registry/blob.Dir's), putting and fetching with every
failure's code, SigV4 against AWS's published example, and the S3 store
against the real tier's MinIO (SLUICE_TEST_S3_*)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from sluice import claim
from sluice.claim.s3 import S3Config, S3Store, sign
from sluice.protocol import Code


def test_ref_round_trip() -> None:
    ref = claim.Ref("claims/2026120607/e/" + "ab" * 16, 3, hashlib.sha256(b"abc").digest())
    text = str(ref)
    assert text == f"3 {hashlib.sha256(b'abc').hexdigest()} claims/2026120607/e/{'ab' * 16}"
    assert claim.parse(text.encode()) == ref
    assert ref.kind == claim.KIND_RECORD
    assert claim.Ref("claims/x", 1, b"").kind == ""


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("3 abc", '"<size> <sha256> <key>"'),
        ("03 " + "a" * 64 + " claims/k", "size is not a count"),
        ("-3 " + "a" * 64 + " claims/k", "size is not a count"),
        ("3 " + "A" * 64 + " claims/k", "64 lower-case hex"),
        ("3 " + "a" * 63 + " claims/k", "64 lower-case hex"),
        ("3 " + "a" * 64 + " claims//k", "segment"),
        ("3 " + "a" * 64 + " claims/../k", "segment"),
        ("3 " + "a" * 64 + " claims/k x", "space or control"),
        ("3 " + "a" * 64 + " ", "empty"),
    ],
)
def test_ref_malformed(value: str, why: str) -> None:
    with pytest.raises(claim.MalformedRef, match=why):
        claim.parse(value.encode())


def test_dir_store_layout(tmp_path: Path) -> None:
    s = claim.DirStore(tmp_path)
    s.put("claims/2026120607/r/k1", b"value", "")
    assert (tmp_path / "claims/2026120607/r/k1").read_bytes() == b"value"
    assert (tmp_path / "claims/2026120607/r/k1.sha256").read_text() == hashlib.sha256(b"value").hexdigest() + "\n"
    assert [p.name for p in (tmp_path / "claims/2026120607/r").iterdir() if p.name.startswith(".sluice-tmp-")] == []
    assert s.get("claims/2026120607/r/k1") == b"value"
    s.delete("claims/2026120607/r/k1")
    s.delete("claims/2026120607/r/k1")  # gone: no error
    assert not (tmp_path / "claims/2026120607/r/k1.sha256").exists()
    with pytest.raises(claim.NotFoundError):
        s.get("claims/2026120607/r/k1")
    with pytest.raises(claim.StoreError, match="reserved"):
        s.put("claims/x.sha256", b"v", "")


def test_put_threshold_and_limit(tmp_path: Path) -> None:
    c = claim.Claims(claim.DirStore(tmp_path), threshold=8, limit=16)
    assert c.put(b"12345678", claim.KIND_REPLY) is None  # at the threshold: in its record
    assert not (tmp_path / "claims").exists()
    ref = c.put(b"123456789", claim.KIND_REPLY)
    assert ref is not None and ref.size == 9 and ref.kind == claim.KIND_REPLY
    assert ref.sha256 == hashlib.sha256(b"123456789").digest()
    assert c.fetch(ref) == b"123456789"
    with pytest.raises(claim.TooLarge, match="17 bytes is over the 16-byte limit") as e:
        c.put(b"x" * 17, claim.KIND_RECORD)
    assert e.value.code == Code.INTERNAL.value
    with pytest.raises(ValueError, match="over the limit"):
        claim.Claims(claim.DirStore(tmp_path), threshold=20, limit=16)


def test_fetch_failures(tmp_path: Path) -> None:
    store = claim.DirStore(tmp_path)
    c = claim.Claims(store, threshold=1, limit=1 << 20)

    def stored(v: bytes) -> claim.Ref:
        ref = c.put(v, claim.KIND_REQUEST)
        assert ref is not None
        return ref

    gone = stored(b"gone")
    c.delete(gone)
    with pytest.raises(claim.ClaimError, match=f"claim {gone.key}: fetch: claimed value not found") as e:
        c.fetch(gone)
    assert e.value.code == Code.INVALID_ARGUMENT.value and e.value.not_found

    altered = stored(b"abcd")
    (tmp_path / altered.key).write_bytes(b"abce")
    with pytest.raises(claim.ClaimError, match="SHA-256 differs") as e:
        c.fetch(altered)
    assert e.value.code == Code.INVALID_ARGUMENT.value and not e.value.not_found

    truncated = stored(b"abcd")
    (tmp_path / truncated.key).write_bytes(b"abc")
    with pytest.raises(claim.ClaimError, match="3 bytes, the reference says 4") as e:
        c.fetch(truncated)
    assert e.value.code == Code.INVALID_ARGUMENT.value

    outside = claim.Ref("elsewhere/k", 1, b"\0" * 32)
    with pytest.raises(claim.ClaimError, match="outside the claims prefix") as e:
        c.fetch(outside)
    assert e.value.code == Code.INVALID_ARGUMENT.value

    with pytest.raises(claim.ClaimError, match="malformed claim reference") as e:
        claim.read_ref(b"nonsense", c)
    assert e.value.code == Code.INVALID_ARGUMENT.value
    with pytest.raises(claim.ClaimError, match="no claim store configured") as e:
        claim.read_ref(str(altered).encode(), None)
    assert e.value.code == Code.FAILED_PRECONDITION.value


def test_store_unreachable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = S3Store(S3Config(endpoint=f"127.0.0.1:{port}", bucket="b", access_key="a", secret_key="s", timeout_s=2))
    c = claim.Claims(s, threshold=1)
    with pytest.raises(claim.StoreDown, match="claim store unavailable") as e:
        c.fetch(claim.Ref("claims/2026120607/q/" + "0" * 32, 1, b"\0" * 32))
    assert e.value.code == Code.UNAVAILABLE.value
    with pytest.raises(claim.StoreDown):
        c.put(b"xx", claim.KIND_REQUEST)


def test_env() -> None:
    assert claim.open_claims(env={}) is None
    with pytest.raises(ValueError, match="access key is empty"):
        claim.open_claims(env={"SLUICE_S3_ENDPOINT": "127.0.0.1:9000"})
    c = claim.open_claims(100, 200, env={"SLUICE_BLOB_DIR": "/tmp/sluice-claim-env-test"})
    assert c is not None and isinstance(c.store, claim.DirStore) and (c.threshold, c.limit) == (100, 200)
    s = claim.store_from_env({"SLUICE_S3_ENDPOINT": "h:1", "SLUICE_S3_ACCESS_KEY": "a", "SLUICE_S3_SECRET_KEY": "b",
                              "SLUICE_S3_TLS": "true", "SLUICE_S3_PREFIX": "/p/"})  # fmt: skip
    assert isinstance(s, S3Store) and s.cfg.tls and s.cfg.bucket == "sluice-models"
    assert s._path("claims/k") == "/sluice-models/p/claims/k"


def test_credentials_from_files(tmp_path: Path) -> None:
    """The keys from SLUICE_S3_*_KEY_FILE (a mounted Secret) when the
    variables naming them are unset, ahead of AWS's; an unreadable file
    is an error naming its variable."""
    (tmp_path / "ak").write_text("file-ak\n")
    (tmp_path / "sk").write_text("file-sk\r\n")
    env = {"SLUICE_S3_ENDPOINT": "h:1", "SLUICE_S3_ACCESS_KEY_FILE": str(tmp_path / "ak"),
           "SLUICE_S3_SECRET_KEY_FILE": str(tmp_path / "sk"), "AWS_ACCESS_KEY_ID": "aws-ak"}  # fmt: skip
    s = claim.store_from_env(env)
    assert isinstance(s, S3Store) and (s.cfg.access_key, s.cfg.secret_key) == ("file-ak", "file-sk")
    s = claim.store_from_env({**env, "SLUICE_S3_ACCESS_KEY": "env-ak"})
    assert isinstance(s, S3Store) and s.cfg.access_key == "env-ak"
    with pytest.raises(ValueError, match=r"\$SLUICE_S3_SECRET_KEY_FILE"):
        claim.store_from_env({**env, "SLUICE_S3_SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_sigv4_example() -> None:
    """AWS's worked example of Signature Version 4 for S3 ("GET Object",
    with a Range header) gives this signature."""
    hs = sign(
        "GET", "examplebucket.s3.amazonaws.com", "/test.txt", {"range": "bytes=0-9"}, hashlib.sha256(b"").hexdigest(),
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", 1369353600.0,
    )  # fmt: skip
    assert hs["x-amz-date"] == "20130524T000000Z"
    assert hs["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


@pytest.mark.skipif(not os.environ.get("SLUICE_TEST_S3_ENDPOINT"), reason="the real tier's MinIO (SLUICE_TEST_S3_*)")
def test_s3_minio() -> None:
    """Put, fetch, alter, delete on MinIO, in the bucket the e2e tests use
    (their platform creates it)."""
    env = os.environ
    s = S3Store(S3Config(endpoint=env["SLUICE_TEST_S3_ENDPOINT"], bucket="sluice-e2e",
                         access_key=env.get("SLUICE_TEST_S3_ACCESS_KEY", ""),
                         secret_key=env.get("SLUICE_TEST_S3_SECRET_KEY", ""),
                         prefix=f"py-claims-{os.getpid()}", ca_file=env.get("SLUICE_TEST_S3_CA_FILE", "")))  # fmt: skip
    _ensure_bucket(s)
    c = claim.Claims(s, threshold=1024)
    value = os.urandom(2 << 20)
    ref = c.put(value, claim.KIND_REPLY)
    assert ref is not None
    assert c.fetch(ref) == value
    s.put(ref.key, value[:-1] + b"\0", "")
    with pytest.raises(claim.ClaimError, match="SHA-256 differs"):
        c.fetch(ref)
    c.delete(ref)
    with pytest.raises(claim.ClaimError, match="not found") as e:
        c.fetch(ref)
    assert e.value.not_found
    c.delete(ref)  # gone: no error


def _ensure_bucket(s: S3Store) -> None:
    """Creates the bucket when it is not there (PUT /bucket)."""
    import http.client

    cfg = s.cfg
    path = "/" + cfg.bucket
    hs = sign("PUT", cfg.endpoint, path, {}, hashlib.sha256(b"").hexdigest(), cfg.access_key, cfg.secret_key,
              cfg.region, __import__("time").time())  # fmt: skip
    conn = (
        http.client.HTTPSConnection(cfg.endpoint, context=s._tls, timeout=10)
        if s._tls is not None
        else http.client.HTTPConnection(cfg.endpoint, timeout=10)
    )
    try:
        conn.request("PUT", path, headers=hs)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 or b"BucketAlreadyOwnedByYou" in body, body
    finally:
        conn.close()
