"""A replica's configuration: one dataclass, validated at construction,
its runtime knobs in one place with their defaults."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluice.claim import Claims
from sluice.kafkaauth import client_settings

if TYPE_CHECKING:
    from sluice.replica.metrics import Metrics
    from sluice.replica.tracing import Tracing

DEFAULT_MAX_ONGOING = 100
"""Records processed at once (the Go replica's default)."""

DEFAULT_DRAIN_TIMEOUT_S = 20.0
"""How long a soft stop, or a revoke, waits for the records in flight."""

DEFAULT_SESSION_TIMEOUT_S = 6.0
"""The broker's lowest accepted session timeout by default, twelve
heartbeats: a replica that dies loses its partitions this long after its
last heartbeat (librdkafka's own default is 45 s)."""

HEARTBEAT_INTERVAL_S = 0.5
"""Heartbeat often: a member learns of a rebalance at its next heartbeat."""

AUTO_COMMIT_INTERVAL_S = 0.25
"""Commit often: the autoscaler reads lag from committed offsets."""

FETCH_MAX_WAIT_S = 0.25
"""A partition that joins a fetch session late waits for the fetch in
flight: keep the wait short, or a replica woken from zero answers late."""

READY_GRACE_S = 2.0
"""How long a member that joined with no partitions waits for some before
it counts as ready anyway (more replicas than partitions)."""

POLL_INTERVAL_S = 0.1
"""The longest a consume call blocks: how soon the loop sees a stop or a
free slot after pausing."""

PAUSE_GRACE_S = 0.1
"""How long the poll thread waits for a free slot at max_ongoing_requests
before it pauses the partitions (rebalances wait as long)."""

CLAIM_RETRY_MIN_S = 0.1
"""A claimed input whose store cannot be reached is fetched again after
this long, twice as long after each next failure..."""

CLAIM_RETRY_MAX_S = 5.0
"""...this long at most: until the record's deadline, or, without one,
as long as the replica runs and owns the partition."""

CLAIM_DELETERS = 4
"""Threads deleting answered claims in the background."""

CLAIM_UPLOADERS = 4
"""Threads storing the claims of outputs emitted on the event loop."""

_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]*")


@dataclass
class ReplicaConfig:
    """One replica of a deployment (see replicas/replica.go's Config)."""

    brokers: list[str]
    group: str
    topics: list[str]  # the deployment's incoming edge topics (and ingress)
    output: str  # the application's output topic
    dead_letter: str  # the application's dead-letter topic
    deployment: str = ""  # for dead-letter headers, logs and reports
    successors: list[str] = field(default_factory=list)  # dataflow edge topics

    # Identity in reports (report.Publisher): the application, this replica
    # among the deployment's, and the spec it runs.
    app: str = ""
    instance: str = ""
    revision: str = ""
    generation: int = 0

    max_ongoing_requests: int = DEFAULT_MAX_ONGOING
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    # A static member of its group (KIP-345) when set: a restarted replica
    # with the same id takes its partitions back without a rebalance.
    instance_id: str = ""
    sync_workers: int = 0  # threads for synchronous handlers; 0: max_ongoing_requests
    # Claim checks (docs/PROTOCOL.md): claimed inputs are fetched from its
    # store, outputs over its threshold stored there. None: no store
    # (every output goes in its record; a claimed input fails
    # failed_precondition).
    claims: Claims | None = None

    # Observability: the process's replica metrics (sluice.replica.metrics;
    # None: not counted), the address its /metrics is served at (reported
    # on the status topic), its spans (sluice.replica.tracing; None: off).
    metrics: Metrics | None = None
    metrics_addr: str = ""
    tracing: Tracing | None = None

    log: logging.Logger = field(default_factory=lambda: logging.getLogger("sluice.replica"))
    # Extra librdkafka settings (tests), applied last.
    consumer_extra: dict[str, Any] = field(default_factory=dict)
    producer_extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.brokers:
            raise ValueError("replica config: brokers: at least one is required")
        if not self.group or not self.topics:
            raise ValueError("replica config: group and topics are required")
        if not self.output or not self.dead_letter:
            raise ValueError("replica config: output and dead_letter topics are required")
        if self.max_ongoing_requests <= 0:
            raise ValueError(f"replica config: max_ongoing_requests: {self.max_ongoing_requests} is not positive")
        if self.drain_timeout_s <= 0:
            raise ValueError(f"replica config: drain_timeout_s: {self.drain_timeout_s} is not positive")
        if self.session_timeout_s <= 0:
            raise ValueError(f"replica config: session_timeout_s: {self.session_timeout_s} is not positive")
        if self.sync_workers < 0:
            raise ValueError(f"replica config: sync_workers: {self.sync_workers} is negative")
        if len(self.instance_id) > 249:
            raise ValueError(f"replica config: instance_id {self.instance_id!r} is longer than 249 characters")
        if not _INSTANCE_ID.fullmatch(self.instance_id):
            raise ValueError(f"replica config: instance_id {self.instance_id!r}: use letters, digits, '.', '_' and '-'")

    def consumer_settings(self) -> dict[str, Any]:
        """librdkafka settings of the group member."""
        conf: dict[str, Any] = {
            **client_settings(self.brokers),
            "group.id": self.group,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # aborted records are no work
            # Offsets are stored (marked) by the replica, only for the
            # finished prefix, and committed in the background.
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": int(AUTO_COMMIT_INTERVAL_S * 1000),
            "heartbeat.interval.ms": int(HEARTBEAT_INTERVAL_S * 1000),
            "session.timeout.ms": int(self.session_timeout_s * 1000),
            "fetch.wait.max.ms": int(FETCH_MAX_WAIT_S * 1000),
            "enable.partition.eof": False,
            "enable.metrics.push": False,  # no KIP-714 telemetry to the broker
        }
        if self.instance_id:
            conf["group.instance.id"] = self.instance_id
        conf.update(self.consumer_extra)
        return conf

    def producer_settings(self) -> dict[str, Any]:
        """librdkafka settings of the outputs' producer: idempotent, every
        replica acknowledged, sent at once."""
        conf: dict[str, Any] = {
            **client_settings(self.brokers),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "enable.metrics.push": False,
        }
        conf.update(self.producer_extra)
        return conf
