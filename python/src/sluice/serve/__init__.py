"""The serve API, with Ray Serve's names: @serve.deployment, .bind(),
serve.run, DeploymentHandle.remote() returning a DeploymentResponse. A
thin layer over the replica runtime (sluice.replica)."""

from sluice.serve.api import run, shutdown
from sluice.serve.batching import batch
from sluice.serve.deployment import Application, Deployment, deployment
from sluice.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator, Forwarded
from sluice.serve.http import Request
from sluice.serve.ingress import ingress
from sluice.serve.lookup import get_deployment_handle
from sluice.serve.multiplex import get_multiplexed_model_id, multiplexed
from sluice.serve.options import UnsupportedOption
from sluice.serve.usermetrics import metrics

__all__ = [
    "Application",
    "Deployment",
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentResponseGenerator",
    "Forwarded",
    "Request",
    "UnsupportedOption",
    "batch",
    "deployment",
    "get_deployment_handle",
    "get_multiplexed_model_id",
    "ingress",
    "metrics",
    "multiplexed",
    "run",
    "shutdown",
]
