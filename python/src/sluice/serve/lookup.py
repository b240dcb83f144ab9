"""serve.get_deployment_handle: a handle to a deployment by its name, for
a graph that mixes code (a Go deployment, or a Python one of another
bundle, in the same application spec). Given as a bind() argument, it
declares the handle: the manifest lists it as {handle: NAME}, so the
platform makes the edge topic, and the replica turns it into a
DeploymentHandle on that edge."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.protocol.names import check_segment


@dataclass(frozen=True)
class NamedHandle:
    """A handle to deployment_name of the same application, not yet bound
    to a replica: what get_deployment_handle returns."""

    deployment_name: str


def get_deployment_handle(deployment_name: str, app_name: str | None = None) -> NamedHandle:
    """A handle to the deployment named deployment_name of this
    application, as a bind() argument (the replica gets a
    DeploymentHandle). Another application's deployments are called
    through its ingress (the gateway), not by handle: app_name, if
    given, is refused."""
    if app_name is not None:
        raise ValueError(
            f"get_deployment_handle({deployment_name!r}, app_name={app_name!r}): a handle reaches the deployments"
            " of its own application; call another application through its route"
        )
    return NamedHandle(check_segment("deployment name", deployment_name))
