"""The Python replica runtime: a consumer-group member of a deployment on
confluent-kafka (librdkafka), keeping the invariants of the Go replica."""

from sluice.replica.config import ReplicaConfig
from sluice.replica.context import RequestContext, current
from sluice.replica.handler import Handler, HTTPIngress, HTTPOutput, Input, Methods, Output, Streamer, StreamOutput
from sluice.replica.replica import Replica, Stats, serve_until_signalled
from sluice.replica.report import ModelsReport, Publisher, Report, models_report_key, report_key

__all__ = [
    "HTTPIngress",
    "HTTPOutput",
    "Handler",
    "Input",
    "Methods",
    "ModelsReport",
    "Output",
    "Publisher",
    "Replica",
    "ReplicaConfig",
    "Report",
    "RequestContext",
    "Stats",
    "StreamOutput",
    "Streamer",
    "current",
    "models_report_key",
    "report_key",
    "serve_until_signalled",
]
