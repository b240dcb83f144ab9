"""An explicit LeaveGroup for a static member (KIP-345).

librdkafka's close() leaves the group for a dynamic member only; a static
member that stops softly must leave too, or its partitions wait a session
timeout. This sends what the Go replica sends: LeaveGroup naming the
member id and no instance id, so that the broker removes this member only
(a newer member that took the instance id over stays). It speaks just
FindCoordinator v1 and LeaveGroup v3, over a connection secured as the
replica's other clients are (wire.Conn)."""

from __future__ import annotations

import logging
import ssl
import struct

from sluice.kafkaauth import process_security
from sluice.replica.config import ReplicaConfig
from sluice.replica.wire import Conn, kstr

_FIND_COORDINATOR, _LEAVE_GROUP = 10, 13
_UNKNOWN_MEMBER_ID = 25
_TIMEOUT_S = 5.0


def _addr(broker: str) -> tuple[str, int]:
    host, _, port = broker.rpartition(":")
    return host.strip("[]"), int(port)


def leave_group(cfg: ReplicaConfig, member_id: str, log: logging.Logger) -> None:
    """Removes member_id from cfg.group; logs what happened, never raises."""
    sec = process_security()
    try:
        with Conn(_addr(cfg.brokers[0]), sec, _TIMEOUT_S) as c:
            r = c.call(_FIND_COORDINATOR, 1, kstr(cfg.group) + b"\x00")
        r.take(">i")  # throttle
        if code := r.take(">h"):
            raise ConnectionError(f"find coordinator: error {code}")
        r.string()  # error message
        r.take(">i")  # node id
        host = r.string()
        port = r.take(">i")
        body = kstr(cfg.group) + struct.pack(">i", 1) + kstr(member_id) + kstr(None)
        with Conn((host, port), sec, _TIMEOUT_S) as c:
            r = c.call(_LEAVE_GROUP, 3, body)
        r.take(">i")  # throttle
        code = r.take(">h")
        if code == 0 and r.take(">i") > 0:
            r.string()
            r.string()
            code = r.take(">h")
    except (OSError, ssl.SSLError, struct.error, ValueError, KeyError, UnicodeDecodeError) as exc:
        log.warning("group leave failed; partitions move after the session timeout", extra={"err": str(exc)})
        return
    if code == _UNKNOWN_MEMBER_ID:
        log.debug("group already left", extra={"group": cfg.group, "member": member_id})
    elif code:
        log.warning("group leave failed; partitions move after the session timeout", extra={"code": code})
    else:
        log.info("left group", extra={"group": cfg.group, "member": member_id})
