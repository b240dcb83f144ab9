"""A small S3 client for claims: GET, PUT and DELETE of whole objects,
signed with AWS Signature Version 4, path-style (MinIO's and every S3's
addressing), over http.client. Object names are <prefix>/<key> in the
bucket, and a put records the value's SHA-256 in x-amz-meta-sha256, as
registry/blob.S3 does."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field

from sluice.claim.ref import check_key
from sluice.claim.store import NotFoundError, StoreError, UnreachableError

DEFAULT_TIMEOUT_S = 10.0
"""Bound on one call without a timeout of its own (registry/blob.S3's)."""
DEFAULT_REGION = "us-east-1"
"""The region requests are signed for: MinIO's default."""
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_BUSY = frozenset({"SlowDown", "ServiceUnavailable", "ServerNotInitialized", "XMinioServerNotInitialized"})


@dataclass(frozen=True)
class S3Config:
    """Where claims are kept on S3. endpoint is host[:port] without a
    scheme; ca_file (a PEM bundle) implies TLS."""

    endpoint: str
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    prefix: str = ""
    tls: bool = False
    ca_file: str = ""
    region: str = DEFAULT_REGION
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.endpoint:
            raise ValueError("s3 config: endpoint is empty")
        if "://" in self.endpoint or any(c in self.endpoint for c in "/?#"):
            raise ValueError(f"s3 config: endpoint {self.endpoint!r}: want host[:port] without a scheme or path")
        if not self.bucket:
            raise ValueError("s3 config: bucket is empty")
        if not self.access_key:
            raise ValueError("s3 config: access key is empty (set SLUICE_S3_ACCESS_KEY or AWS_ACCESS_KEY_ID)")
        if not self.secret_key:
            raise ValueError("s3 config: secret key is empty (set SLUICE_S3_SECRET_KEY or AWS_SECRET_ACCESS_KEY)")
        if self.timeout_s <= 0:
            raise ValueError(f"s3 config: timeout {self.timeout_s} is not positive")


class S3Store:
    """Whole objects on S3 (see the module's doc). Thread-safe: each call
    has a connection of its own."""

    def __init__(self, cfg: S3Config) -> None:
        self.cfg = cfg
        self._prefix = cfg.prefix.strip("/")
        self._tls: ssl.SSLContext | None = None
        if cfg.tls or cfg.ca_file:
            try:
                self._tls = ssl.create_default_context(cafile=cfg.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"s3 config: CA file {cfg.ca_file}: {exc}") from exc

    def _path(self, key: str) -> str:
        if why := check_key(key):
            raise StoreError(f"key {key!r} {why}")
        name = f"{self._prefix}/{key}" if self._prefix else key
        return "/" + urllib.parse.quote(f"{self.cfg.bucket}/{name}", safe="/")

    def get(self, key: str, timeout_s: float | None = None) -> bytes:
        return self._call("GET", key, b"", {}, timeout_s)

    def put(self, key: str, value: bytes, sha256_hex: str = "", timeout_s: float | None = None) -> None:
        sha256_hex = sha256_hex or hashlib.sha256(value).hexdigest()
        meta = {"content-type": "application/octet-stream", "x-amz-meta-sha256": sha256_hex}
        self._call("PUT", key, value, meta, timeout_s, sha256_hex)

    def delete(self, key: str, timeout_s: float | None = None) -> None:
        with contextlib.suppress(NotFoundError):
            self._call("DELETE", key, b"", {}, timeout_s)

    def _call(self, method: str, key: str, body: bytes, extra: dict[str, str], timeout_s: float | None,
              payload_sha: str = "") -> bytes:  # fmt: skip
        cfg = self.cfg
        path = self._path(key)
        hs = sign(method, cfg.endpoint, path, extra, payload_sha or hashlib.sha256(body).hexdigest(),
                  cfg.access_key, cfg.secret_key, cfg.region, time.time())  # fmt: skip
        timeout = cfg.timeout_s if timeout_s is None else max(timeout_s, 0.001)
        conn: http.client.HTTPConnection
        if self._tls is not None:
            conn = http.client.HTTPSConnection(cfg.endpoint, timeout=timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(cfg.endpoint, timeout=timeout)
        where = f"s3 {cfg.endpoint}: {method.lower()} {key!r}"
        try:
            conn.request(method, path, body=body if method == "PUT" else None, headers=hs)
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError as exc:
            raise UnreachableError(f"{where}: no response within {timeout:g} s") from exc
        except ssl.SSLCertVerificationError as exc:
            raise StoreError(f"{where}: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise UnreachableError(f"{where}: {exc}") from exc
        finally:
            conn.close()
        if 200 <= resp.status < 300:
            return data
        code = _error_code(data)
        msg = f"{where}: {resp.status} {code or resp.reason}"
        if resp.status == 404 and code in ("NoSuchKey", ""):
            raise NotFoundError(msg)
        if resp.status >= 500 or code in _BUSY:
            raise UnreachableError(msg)
        raise StoreError(msg)


def _error_code(body: bytes) -> str:
    """The <Code> of an S3 error document, "" without one."""
    s = body[:4096].decode("utf-8", "replace")
    start = s.find("<Code>")
    end = s.find("</Code>", start)
    return s[start + 6 : end] if start >= 0 and end > start else ""


def sign(method: str, host: str, path: str, extra: dict[str, str], payload_sha: str, access_key: str,
         secret_key: str, region: str, now_s: float) -> dict[str, str]:  # fmt: skip
    """The headers of a request signed with AWS Signature Version 4 (no
    query string): host, x-amz-date, x-amz-content-sha256, extra, and
    Authorization. path is already URI-encoded."""
    t = time.gmtime(now_s)
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", t)
    day = amz_date[:8]
    hs = {k.lower(): v.strip() for k, v in extra.items()}
    hs.update({"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_sha})
    names = sorted(hs)
    canonical = "\n".join([
        method, path, "",
        "".join(f"{n}:{hs[n]}\n" for n in names),
        ";".join(names),
        payload_sha,
    ])  # fmt: skip
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    hs["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return hs  # host included: http.client then sends this one, not its own
