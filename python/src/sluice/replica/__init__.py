"""The Python replica runtime: a consumer-group member of a deployment on
confluent-kafka (librdkafka), keeping the invariants of the Go replica."""

from sluice.replica.config import ReplicaConfig
from sluice.replica.context import RequestContext, current
from sluice.replica.handler import Handler, HTTPIngress, HTTPOutput, Input, Output, Streamer
from sluice.replica.replica import Replica, Stats, serve_until_signalled

__all__ = [
    "HTTPIngress",
    "HTTPOutput",
    "Handler",
    "Input",
    "Output",
    "Replica",
    "ReplicaConfig",
    "RequestContext",
    "Stats",
    "Streamer",
    "current",
    "serve_until_signalled",
]
