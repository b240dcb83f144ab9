"""How Python code that calls a Sluice gateway finds it, trusts it and
authenticates to it: the environment the ``sluice`` command line reads.

- ``SLUICE_ADDR``: the gateway, ``host:port`` (clear text) or an
  ``http://`` or ``https://`` URL (default ``127.0.0.1:8000``).
- ``SLUICE_TOKEN``: the bearer token sent as ``Authorization: Bearer``
  on every call (a token of the gateway's ``--auth-file``, or a JWT its
  ``--jwks-file`` verifies). Never a command-line argument.
- ``SLUICE_CA_FILE``: the PEM CA that signed an https gateway's
  certificate (default: the system's CAs).
- ``SLUICE_CLIENT_CERT_FILE`` and ``SLUICE_CLIENT_KEY_FILE``: the
  certificate presented to a gateway that verifies clients
  (``--tls-client-ca``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ADDR = "127.0.0.1:8000"


@dataclass(frozen=True)
class GatewayAccess:
    """Where the gateway is and how to reach it. ``from_env`` reads it."""

    url: str  # the base URL, without a trailing slash
    token: str | None = None
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"gateway URL {self.url!r}: want http:// or https://")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("SLUICE_CLIENT_CERT_FILE and SLUICE_CLIENT_KEY_FILE go together")
        if self.url.startswith("http://") and (self.ca_file or self.client_cert_file):
            raise ValueError(f"gateway URL {self.url}: a CA or client certificate needs an https:// SLUICE_ADDR")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayAccess:
        """Reads SLUICE_ADDR, SLUICE_TOKEN, SLUICE_CA_FILE and the client
        certificate variables (os.environ when env is None)."""
        e = os.environ if env is None else env
        addr = e.get("SLUICE_ADDR") or DEFAULT_ADDR
        if "://" not in addr:
            addr = "http://" + addr
        return cls(
            url=addr.rstrip("/"),
            token=(e.get("SLUICE_TOKEN") or "").strip() or None,
            ca_file=e.get("SLUICE_CA_FILE") or None,
            client_cert_file=e.get("SLUICE_CLIENT_CERT_FILE") or None,
            client_key_file=e.get("SLUICE_CLIENT_KEY_FILE") or None,
        )

    def headers(self) -> dict[str, str]:
        """The headers every call carries: the bearer token, if any."""
        return {"authorization": "Bearer " + self.token} if self.token else {}

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS of an https gateway (None for http): its CA, the
        hostname checked, the client certificate if given."""
        if not self.url.startswith("https://"):
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_cert_file and self.client_key_file:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx
