"""An explicit LeaveGroup for a static member (KIP-345).

librdkafka's close() leaves the group for a dynamic member only; a static
member that stops softly must leave too, or its partitions wait a session
timeout. This sends what the Go replica sends: LeaveGroup naming the
member id and no instance id, so that the broker removes this member only
(a newer member that took the instance id over stays). It speaks just
FindCoordinator v1 and LeaveGroup v3 over a plain socket."""

from __future__ import annotations

import logging
import socket
import struct

from sluice.replica.config import ReplicaConfig

_FIND_COORDINATOR, _LEAVE_GROUP = 10, 13
_UNKNOWN_MEMBER_ID = 25
_TIMEOUT_S = 5.0
_CLIENT_ID = b"sluice-replica"


class _Reader:
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


def _str(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _call(addr: tuple[str, int], api: int, version: int, body: bytes) -> _Reader:
    head = struct.pack(">hhi", api, version, 1) + _str(_CLIENT_ID.decode())
    msg = head + body
    with socket.create_connection(addr, timeout=_TIMEOUT_S) as s:
        s.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", _read(s, 4))[0]
        r = _Reader(_read(s, size))
    r.take(">i")  # correlation id
    return r


def _read(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def _addr(broker: str) -> tuple[str, int]:
    host, _, port = broker.rpartition(":")
    return host.strip("[]"), int(port)


def leave_group(cfg: ReplicaConfig, member_id: str, log: logging.Logger) -> None:
    """Removes member_id from cfg.group; logs what happened, never raises."""
    try:
        r = _call(_addr(cfg.brokers[0]), _FIND_COORDINATOR, 1, _str(cfg.group) + b"\x00")
        r.take(">i")  # throttle
        if code := r.take(">h"):
            raise ConnectionError(f"find coordinator: error {code}")
        r.string()  # error message
        r.take(">i")  # node id
        host = r.string()
        port = r.take(">i")
        body = _str(cfg.group) + struct.pack(">i", 1) + _str(member_id) + _str(None)
        r = _call((host, port), _LEAVE_GROUP, 3, body)
        r.take(">i")  # throttle
        code = r.take(">h")
        if code == 0 and r.take(">i") > 0:
            r.string()
            r.string()
            code = r.take(">h")
    except (OSError, struct.error, ValueError, UnicodeDecodeError) as exc:
        log.warning("group leave failed; partitions move after the session timeout", extra={"err": str(exc)})
        return
    if code == _UNKNOWN_MEMBER_ID:
        log.debug("group already left", extra={"group": cfg.group, "member": member_id})
    elif code:
        log.warning("group leave failed; partitions move after the session timeout", extra={"code": code})
    else:
        log.info("left group", extra={"group": cfg.group, "member": member_id})
