"""A deployment's own Prometheus metrics: serve.metrics() is the registry
to register them with, served by the replica process on its /metrics
beside the platform's series, each sample labelled with the replica's
app, deployment and replica (as the Go SDK's serve.Metrics scopes its
registerer), so the platform's service discovery finds them too.

    from prometheus_client import Counter
    from sluice import serve

    greetings = Counter("greeter_greetings", "Greetings by language.", ["language"], registry=serve.metrics())

Call it at import or in the constructor (the replica sets it up before it
imports the application), or inside a request. Outside a replica that
serves metrics (a unit test, serve.run, a replica without
SLUICE_METRICS_ADDR) it is a registry nothing serves: registering works
there and counts, unseen."""

from __future__ import annotations

from contextvars import ContextVar

from prometheus_client import CollectorRegistry

from sluice.replica.metrics import Labelled

_scope: ContextVar[CollectorRegistry | None] = ContextVar("sluice_metrics", default=None)


def metrics() -> CollectorRegistry:
    """The registry of this replica's own metrics (see the module)."""
    reg = _scope.get()
    return reg if reg is not None else CollectorRegistry()


def scope(process: CollectorRegistry, app: str, deployment: str, replica: str) -> CollectorRegistry:
    """Makes metrics() return, in this context and those copied from it
    from now on, a registry that process serves with the replica's labels."""
    user = CollectorRegistry(auto_describe=True)
    process.register(Labelled(user, {"app": app, "deployment": deployment, "replica": replica}))
    _scope.set(user)
    return user
