"""The least of Kafka's wire protocol the replica speaks itself (an
explicit LeaveGroup, leave.py): request framing, and a connection secured
as the process's other clients are (sluice.kafkaauth): TLS, then SASL
PLAIN, SCRAM-SHA-256/512 (RFC 5802) or OAUTHBEARER (RFC 7628)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import struct

from sluice.kafkaauth import KafkaSecurity

_SASL_HANDSHAKE, _SASL_AUTHENTICATE = 17, 36
_CLIENT_ID = "sluice-replica"


class Reader:
    """Reads a response body field by field."""

    def __init__(self, b: bytes) -> None:
        self.b, self.i = b, 0

    def take(self, fmt: str) -> int:
        (v,) = struct.unpack_from(fmt, self.b, self.i)
        self.i += struct.calcsize(fmt)
        return int(v)

    def string(self) -> str:
        n = self.take(">h")
        if n < 0:
            return ""
        s = self.b[self.i : self.i + n].decode()
        self.i += n
        return s

    def bytes_(self) -> bytes:
        n = self.take(">i")
        if n < 0:
            return b""
        v = self.b[self.i : self.i + n]
        self.i += n
        return v


def kstr(s: str | None) -> bytes:
    """A Kafka (nullable) STRING."""
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def kbytes(b: bytes) -> bytes:
    """A Kafka BYTES."""
    return struct.pack(">i", len(b)) + b


class Conn:
    """One connection to a broker, secured and authenticated."""

    def __init__(self, addr: tuple[str, int], sec: KafkaSecurity, timeout_s: float) -> None:
        raw = socket.create_connection(addr, timeout=timeout_s)
        self._sock: socket.socket = raw
        self._corr = 0
        try:
            if sec.tls_on:
                ctx = ssl.create_default_context(cafile=sec.ca_file or None)
                if sec.cert_file:
                    ctx.load_cert_chain(sec.cert_file, sec.key_file)
                self._sock = ctx.wrap_socket(raw, server_hostname=addr[0])
            if sec.mechanism:
                self._authenticate(sec)
        except BaseException:
            self._sock.close()
            raise

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *_: object) -> None:
        self._sock.close()

    def call(self, api: int, version: int, body: bytes) -> Reader:
        """Sends one request and returns its response after the correlation id."""
        self._corr += 1
        msg = struct.pack(">hhi", api, version, self._corr) + kstr(_CLIENT_ID) + body
        self._sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", self._read(4))[0]
        r = Reader(self._read(size))
        r.take(">i")  # correlation id
        return r

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def _authenticate(self, sec: KafkaSecurity) -> None:
        r = self.call(_SASL_HANDSHAKE, 1, kstr(sec.mechanism))
        if code := r.take(">h"):
            raise ConnectionError(f"SASL handshake for {sec.mechanism}: error {code}")
        if sec.mechanism == "PLAIN":
            self._step(b"\x00" + sec.username.encode() + b"\x00" + sec.secret().encode())
        elif sec.mechanism == "OAUTHBEARER":
            self._step(b"n,,\x01auth=Bearer " + sec.secret().encode() + b"\x01\x01")
        else:
            self._scram(sec)

    def _step(self, auth: bytes) -> bytes:
        r = self.call(_SASL_AUTHENTICATE, 1, kbytes(auth))
        code = r.take(">h")
        msg = r.string()
        if code:
            raise ConnectionError(f"SASL authentication: error {code}: {msg}")
        return r.bytes_()

    def _scram(self, sec: KafkaSecurity) -> None:
        h = hashlib.sha512 if sec.mechanism == "SCRAM-SHA-512" else hashlib.sha256
        name = sec.username.replace("=", "=3D").replace(",", "=2C")
        nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        first_bare = f"n={name},r={nonce}"
        server_first = self._step(("n,," + first_bare).encode()).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        if not attrs.get("r", "").startswith(nonce):
            raise ConnectionError("SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(h().name, sec.secret().encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", h).digest()
        final_bare = f"c=biws,r={attrs['r']}"
        auth_message = f"{first_bare},{server_first},{final_bare}".encode()
        signature = hmac.new(h(client_key).digest(), auth_message, h).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_final = self._step(f"{final_bare},p={base64.b64encode(proof).decode()}".encode()).decode()
        server_key = hmac.new(salted, b"Server Key", h).digest()
        expected = base64.b64encode(hmac.new(server_key, auth_message, h).digest()).decode()
        if not hmac.compare_digest(server_final, "v=" + expected):
            raise ConnectionError("SCRAM: the server's signature does not verify")
