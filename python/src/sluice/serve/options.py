"""Ray Serve's deployment options as Sluice's deployment spec: what
@serve.deployment(...) takes, checked at construction, and the spec
fields (platform/spec.Deployment, in JSON) the manifest carries for each.
An option Sluice has no meaning for is refused with what to use instead,
so an application written for Ray fails at deploy, not in production."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_HEALTH_CHECK_PERIOD_S = 10.0
"""Ray's default: check_health runs every 10 s."""

DEFAULT_HEALTH_CHECK_TIMEOUT_S = 30.0
"""Ray's default: a check_health that has not returned in 30 s failed."""

DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S = 20.0
"""Ray's default: requests in flight get 20 s to finish at a stop."""

# Ray's autoscaling_config defaults, where Sluice has the same knob.
_RAY_TARGET_ONGOING = 2.0
_RAY_UPSCALE_DELAY_S = 30.0
_RAY_DOWNSCALE_DELAY_S = 600.0
_AUTO_MAX_REPLICAS = 100  # num_replicas="auto": Ray's max_replicas

_AUTOSCALING_KEYS = {
    "min_replicas", "initial_replicas", "max_replicas", "target_ongoing_requests", "upscale_delay_s",
    "downscale_delay_s", "downscale_to_zero_delay_s", "metrics_interval_s",
}  # fmt: skip

_AUTOSCALING_REFUSED = {
    "look_back_period_s": "Sluice reads demand (lag and requests in flight) as it is at each poll",
    "smoothing_factor": "Sluice scales to the demand seen over upscale_delay_s/downscale_delay_s",
    "upscale_smoothing_factor": "Sluice scales to the demand seen over upscale_delay_s",
    "downscale_smoothing_factor": "Sluice scales to the demand seen over downscale_delay_s",
    "upscaling_factor": "Sluice scales to the demand seen over upscale_delay_s",
    "downscaling_factor": "Sluice scales to the demand seen over downscale_delay_s",
    "target_num_ongoing_requests_per_replica": "use target_ongoing_requests, its current name",
    "max_ongoing_requests": "set max_ongoing_requests on the deployment",
    "policy": "Sluice's autoscaler is lag-driven; tune it with the keys it takes",
}

_ACTOR_KEYS = {"num_cpus", "num_gpus", "memory"}

_ACTOR_REFUSED = {
    "resources": "Sluice places replicas by CPU, memory and GPU alone: use num_cpus, memory and num_gpus",
    "runtime_env": "a python-project bundle's requirements.txt or pyproject.toml is its environment",
    "accelerator_type": "Sluice places replicas by GPU count (num_gpus); pick the GPU model with the node's labels",
    "object_store_memory": "Sluice has no object store: values travel as records (large ones as claim checks)",
    "max_restarts": "the platform restarts a replica process that dies, without bound",
    "max_task_retries": "a failed request is answered with its error (or dead-lettered); retry in the caller",
    "scheduling_strategy": "the node places replicas by their resources",
}

# Deployment options of Ray Serve that Sluice refuses, with what to use.
REFUSED = {
    "placement_group_bundles": "Sluice places each replica as one process: ask for its resources with "
    "ray_actor_options={'num_cpus': ..., 'num_gpus': ..., 'memory': ...}",
    "placement_group_strategy": "Sluice places each replica as one process: ask for its resources with "
    "ray_actor_options",
    "max_replicas_per_node": "the node places replicas by their resources (ray_actor_options)",
    "max_queued_requests": "requests queue in the deployment's Kafka topics, bounded by each request's deadline; "
    "size the deployment with autoscaling_config",
    "graceful_shutdown_wait_loop_s": "a stopping replica waits for its requests in flight until "
    "graceful_shutdown_timeout_s, with no loop to tune",
    "logging_config": "replicas log to standard error; the platform collects it",
    "route_prefix": "give the application's prefix at deploy: sluice deploy --route-prefix",
    "is_driver_deployment": "Sluice has no driver deployments",
}


class UnsupportedOption(ValueError):
    """A Ray Serve option that Sluice has no meaning for; the message names
    it and says what to use instead."""


@dataclass(frozen=True)
class Autoscaling:
    """autoscaling_config, checked."""

    min_replicas: int
    initial_replicas: int
    max_replicas: int
    target_ongoing_requests: float
    upscale_delay_s: float
    downscale_delay_s: float
    downscale_to_zero_delay_s: float | None
    metrics_interval_s: float | None


def autoscaling(deployment: str, cfg: Mapping[str, Any] | None) -> Autoscaling | None:
    """autoscaling_config as Sluice reads it (Ray's defaults for what it
    leaves out), or None when there is none."""
    if cfg is None:
        return None
    where = f"deployment {deployment}: autoscaling_config"
    for k in cfg:
        if k in _AUTOSCALING_REFUSED:
            raise UnsupportedOption(f"{where}: {k} is not supported: {_AUTOSCALING_REFUSED[k]}")
        if k not in _AUTOSCALING_KEYS:
            raise UnsupportedOption(f"{where}: unknown key {k} (Sluice takes {', '.join(sorted(_AUTOSCALING_KEYS))})")
    lo = _count(where, "min_replicas", cfg.get("min_replicas", 1), 0)
    hi = _count(where, "max_replicas", cfg.get("max_replicas", 1), 1)
    init = _count(where, "initial_replicas", cfg.get("initial_replicas", lo), 0)
    if not lo <= init <= hi:
        raise ValueError(f"{where}: want min_replicas <= initial_replicas <= max_replicas, got {lo}, {init}, {hi}")
    return Autoscaling(
        min_replicas=lo, initial_replicas=init, max_replicas=hi,
        target_ongoing_requests=_seconds(where, "target_ongoing_requests",
                                         cfg.get("target_ongoing_requests", _RAY_TARGET_ONGOING)),
        upscale_delay_s=_seconds(where, "upscale_delay_s", cfg.get("upscale_delay_s", _RAY_UPSCALE_DELAY_S), 0),
        downscale_delay_s=_seconds(where, "downscale_delay_s",
                                   cfg.get("downscale_delay_s", _RAY_DOWNSCALE_DELAY_S), 0),
        downscale_to_zero_delay_s=_optional_s(where, "downscale_to_zero_delay_s", cfg.get("downscale_to_zero_delay_s")),
        metrics_interval_s=_optional_s(where, "metrics_interval_s", cfg.get("metrics_interval_s")),
    )  # fmt: skip


def auto(deployment: str) -> Autoscaling:
    """num_replicas="auto": Ray's defaults for it (1 to 100 replicas)."""
    a = autoscaling(deployment, {"min_replicas": 1, "max_replicas": _AUTO_MAX_REPLICAS})
    assert a is not None
    return a


@dataclass(frozen=True)
class Resources:
    """ray_actor_options, checked: what each replica needs."""

    num_cpus: float = 0.0
    num_gpus: float = 0.0
    memory: int = 0  # bytes


def resources(deployment: str, opts: Mapping[str, Any] | None) -> Resources:
    where = f"deployment {deployment}: ray_actor_options"
    if not opts:
        return Resources()
    for k in opts:
        if k in _ACTOR_REFUSED:
            raise UnsupportedOption(f"{where}: {k} is not supported: {_ACTOR_REFUSED[k]}")
        if k not in _ACTOR_KEYS:
            raise UnsupportedOption(f"{where}: unknown key {k} (Sluice takes num_cpus, num_gpus and memory)")
    cpus = _seconds(where, "num_cpus", opts.get("num_cpus", 0), 0)
    gpus = _seconds(where, "num_gpus", opts.get("num_gpus", 0), 0)
    mem = opts.get("memory", 0)
    if isinstance(mem, bool) or not isinstance(mem, (int, float)) or mem < 0 or not math.isfinite(mem):
        raise ValueError(f"{where}: memory: {mem!r} is not a number of bytes")
    return Resources(cpus, gpus, int(mem))


def refuse(deployment: str, given: Mapping[str, Any]) -> None:
    """Raises UnsupportedOption for the first option of given Sluice does
    not take (a Ray Serve option it refuses, or one it does not know)."""
    for k in given:
        why = REFUSED.get(k)
        if why is not None:
            raise UnsupportedOption(f"deployment {deployment}: {k} is not supported: {why}")
        raise UnsupportedOption(f"deployment {deployment}: unknown option {k}")


def check_user_config(deployment: str, cfg: Any) -> None:
    """user_config must travel as JSON (the spec holds it)."""
    if cfg is None:
        return
    try:
        json.dumps(cfg)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"deployment {deployment}: user_config is not JSON: {exc}") from None


def check_period(deployment: str, name: str, v: float) -> float:
    return _seconds(f"deployment {deployment}", name, v, 0, positive=True)


def spec_fields(
    num_replicas: int, auto_cfg: Autoscaling | None, max_ongoing: int, user_config: Any, res: Resources
) -> dict[str, Any]:
    """The deployment spec's fields (platform/spec.Deployment in JSON)
    for these options; the platform defaults what is absent."""
    out: dict[str, Any] = {}
    if auto_cfg is None:
        out["replicas"] = {"min": num_replicas, "initial": num_replicas, "max": num_replicas}
    else:
        a = auto_cfg
        out["replicas"] = {"min": a.min_replicas, "initial": a.initial_replicas, "max": a.max_replicas}
        sc: dict[str, Any] = {"target_ongoing_requests": a.target_ongoing_requests,
                              "scale_up_delay": _duration(a.upscale_delay_s),
                              "scale_down_delay": _duration(a.downscale_delay_s)}  # fmt: skip
        if a.downscale_to_zero_delay_s is not None:
            sc["scale_to_zero_after"] = _duration(a.downscale_to_zero_delay_s)
        if a.metrics_interval_s is not None:
            sc["poll_interval"] = _duration(a.metrics_interval_s)
        out["autoscaling"] = sc
    out["max_ongoing_requests"] = max_ongoing
    if user_config is not None:
        out["user_config"] = user_config
    r: dict[str, Any] = {}
    if res.num_cpus:
        r["cpu"] = res.num_cpus
    if res.memory:
        r["memory"] = res.memory
    if res.num_gpus:
        r["gpu"] = res.num_gpus
    if r:
        out["resources"] = r
    return out


def _duration(s: float) -> str:
    """Seconds as a Go duration string (platform/spec.Duration)."""
    ms = round(s * 1000)
    return f"{ms}ms"


def _count(where: str, name: str, v: Any, least: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise ValueError(f"{where}: {name}: {v!r} is not an integer >= {least}")
    return v


def _seconds(where: str, name: str, v: Any, least: float = 0, positive: bool = False) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= least
    if not ok or (positive and v <= 0):
        raise ValueError(f"{where}: {name}: {v!r} is not a {'positive' if positive else 'non-negative'} number")
    return float(v)


def _optional_s(where: str, name: str, v: Any) -> float | None:
    return None if v is None else _seconds(where, name, v, 0)
