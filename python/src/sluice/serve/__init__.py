"""The serve API, with Ray Serve's names: @serve.deployment, .bind(),
serve.run, DeploymentHandle.remote() returning a DeploymentResponse. A
thin layer over the replica runtime (sluice.replica)."""

from sluice.serve.api import run, shutdown
from sluice.serve.deployment import Application, Deployment, deployment
from sluice.serve.handle import DeploymentHandle, DeploymentResponse
from sluice.serve.http import Request
from sluice.serve.ingress import ingress

__all__ = [
    "Application",
    "Deployment",
    "DeploymentHandle",
    "DeploymentResponse",
    "Request",
    "deployment",
    "ingress",
    "run",
    "shutdown",
]
