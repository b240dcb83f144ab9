"""Deployments and applications as Ray Serve declares them:
@serve.deployment on a class or function, .options(), .bind()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, overload

from sluice.protocol.names import check_segment


@dataclass(frozen=True)
class Options:
    """A deployment's options (Ray Serve's names and defaults)."""

    name: str
    num_replicas: int = 1
    max_ongoing_requests: int = 5
    stream: bool = False  # the callable yields items: each is one item of a stream

    def __post_init__(self) -> None:
        check_segment("deployment name", self.name)
        if self.num_replicas < 1:
            raise ValueError(f"deployment {self.name}: num_replicas: {self.num_replicas} is not positive")
        if self.max_ongoing_requests < 1:
            raise ValueError(
                f"deployment {self.name}: max_ongoing_requests: {self.max_ongoing_requests} is not positive"
            )


class Deployment:
    """A class (one instance per replica, called through __call__) or a
    function, with its options."""

    def __init__(self, target: Callable[..., Any], options: Options) -> None:
        self.target = target
        self.opts = options

    @property
    def name(self) -> str:
        return self.opts.name

    def options(self, **changes: Any) -> Deployment:
        """The same deployment with some options changed."""
        return Deployment(self.target, replace(self.opts, **changes))

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """An application of this deployment with its constructor's
        arguments; an Application among them becomes a DeploymentHandle."""
        return Application(self, args, kwargs)


@dataclass(eq=False)
class Application:
    """A bound deployment: the node of a graph its arguments make."""

    deployment: Deployment
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def children(self) -> list[Application]:
        return [a for a in (*self.args, *self.kwargs.values()) if isinstance(a, Application)]


@overload
def deployment(target: Callable[..., Any], /) -> Deployment: ...


@overload
def deployment(
    *, name: str | None = None, num_replicas: int = 1, max_ongoing_requests: int = 5, stream: bool = False
) -> Callable[[Callable[..., Any]], Deployment]: ...


def deployment(
    target: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    num_replicas: int = 1,
    max_ongoing_requests: int = 5,
    stream: bool = False,
) -> Deployment | Callable[[Callable[..., Any]], Deployment]:
    """Declares a deployment: @serve.deployment or @serve.deployment(...)."""

    def wrap(t: Callable[..., Any]) -> Deployment:
        opts = Options(name or t.__name__, num_replicas, max_ongoing_requests, stream)
        return Deployment(t, opts)

    return wrap(target) if target is not None else wrap
