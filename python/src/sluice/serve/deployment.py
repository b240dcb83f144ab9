"""Deployments and applications as Ray Serve declares them:
@serve.deployment on a class or function, .options(), .bind()."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, overload

from sluice.protocol.names import check_segment
from sluice.serve import options as ro


@dataclass(frozen=True)
class Options:
    """A deployment's options (Ray Serve's names and defaults), checked at
    construction: serve/options.py maps them to the deployment spec."""

    name: str
    num_replicas: int | str = 1  # or "auto": autoscaling with Ray's defaults
    max_ongoing_requests: int = 5
    stream: bool = False  # the callable yields items: each is one item of a stream
    autoscaling_config: Mapping[str, Any] | None = None
    user_config: Any = None
    ray_actor_options: Mapping[str, Any] | None = None
    health_check_period_s: float = ro.DEFAULT_HEALTH_CHECK_PERIOD_S
    health_check_timeout_s: float = ro.DEFAULT_HEALTH_CHECK_TIMEOUT_S
    graceful_shutdown_timeout_s: float = ro.DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S

    def __post_init__(self) -> None:
        check_segment("deployment name", self.name)
        n = self.num_replicas
        if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f'deployment {self.name}: num_replicas: {n!r} is not positive (nor "auto")')
        if self.autoscaling_config is not None and n not in (1, "auto"):
            raise ValueError(f"deployment {self.name}: num_replicas and autoscaling_config: give one of them")
        if self.max_ongoing_requests < 1:
            raise ValueError(
                f"deployment {self.name}: max_ongoing_requests: {self.max_ongoing_requests} is not positive"
            )
        ro.autoscaling(self.name, self.autoscaling_config)
        ro.resources(self.name, self.ray_actor_options)
        ro.check_user_config(self.name, self.user_config)
        for p in ("health_check_period_s", "health_check_timeout_s", "graceful_shutdown_timeout_s"):
            ro.check_period(self.name, p, getattr(self, p))

    @property
    def autoscaling(self) -> ro.Autoscaling | None:
        """The autoscaling the options ask for, or None for a fixed size."""
        if self.autoscaling_config is not None:
            return ro.autoscaling(self.name, self.autoscaling_config)
        return ro.auto(self.name) if self.num_replicas == "auto" else None

    @property
    def replicas(self) -> int:
        """How many replicas start (serve.run runs that many)."""
        a = self.autoscaling
        if a is not None:
            return max(1, a.initial_replicas)
        assert isinstance(self.num_replicas, int)
        return self.num_replicas

    def spec(self) -> dict[str, Any]:
        """The deployment spec's fields these options set."""
        n = self.num_replicas if isinstance(self.num_replicas, int) else 1
        res = ro.resources(self.name, self.ray_actor_options)
        return ro.spec_fields(n, self.autoscaling, self.max_ongoing_requests, self.user_config, res)


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
        """The same deployment with some options changed; an option Sluice
        does not take is refused (UnsupportedOption)."""
        ro.refuse(self.name, {k: v for k, v in changes.items() if k not in _OPTION_NAMES})
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


_OPTION_NAMES = frozenset(f.name for f in fields(Options))


@overload
def deployment(target: Callable[..., Any], /) -> Deployment: ...


@overload
def deployment(
    *,
    name: str | None = None,
    num_replicas: int | str = 1,
    max_ongoing_requests: int = 5,
    stream: bool = False,
    autoscaling_config: Mapping[str, Any] | None = None,
    user_config: Any = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    health_check_period_s: float = ro.DEFAULT_HEALTH_CHECK_PERIOD_S,
    health_check_timeout_s: float = ro.DEFAULT_HEALTH_CHECK_TIMEOUT_S,
    graceful_shutdown_timeout_s: float = ro.DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S,
    **ray_only: Any,
) -> Callable[[Callable[..., Any]], Deployment]: ...


def deployment(
    target: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    num_replicas: int | str = 1,
    max_ongoing_requests: int = 5,
    stream: bool = False,
    autoscaling_config: Mapping[str, Any] | None = None,
    user_config: Any = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    health_check_period_s: float = ro.DEFAULT_HEALTH_CHECK_PERIOD_S,
    health_check_timeout_s: float = ro.DEFAULT_HEALTH_CHECK_TIMEOUT_S,
    graceful_shutdown_timeout_s: float = ro.DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S,
    **ray_only: Any,
) -> Deployment | Callable[[Callable[..., Any]], Deployment]:
    """Declares a deployment: @serve.deployment or @serve.deployment(...).
    A Ray Serve option Sluice has no meaning for (ray_only) is refused
    with UnsupportedOption, naming it and what to use instead."""

    def wrap(t: Callable[..., Any]) -> Deployment:
        ro.refuse(name or t.__name__, ray_only)
        opts = Options(name or t.__name__, num_replicas, max_ongoing_requests, stream, autoscaling_config,
                       user_config, ray_actor_options, health_check_period_s, health_check_timeout_s,
                       graceful_shutdown_timeout_s)  # fmt: skip
        return Deployment(t, opts)

    return wrap(target) if target is not None else wrap
