"""What a Python application offers, as the platform reads a code
bundle's manifest (platform/bundle's format, `BINARY describe --json` of
a Go binary): its deployments as handlers, and the application its bind()
graph makes as a spec the platform can deploy."""

from __future__ import annotations

import inspect
import json
import platform
import sys
from typing import Any

import sluice
from sluice.serve import importing
from sluice.serve.deployment import Application, Deployment
from sluice.serve.handle import DeploymentHandle
from sluice.serve.http import takes_request
from sluice.serve.lookup import NamedHandle

FORMAT = 1
"""platform/bundle.FormatVersion."""

PROTOCOL = 1
"""The record protocol level this runtime speaks (platform/bundle): 1,
claim checks (sl-claim) read and written (bundle.ProtocolClaims)."""

_ANY: dict[str, Any] = {"go": "any", "id": "python:any", "encoding": "json", "schema": {}}
_VALUE: dict[str, Any] = {"go": "any", "id": "python:value", "encoding": "json", "schema": {}}
"""A value argument: a spec gives it as JSON, never as a handle."""
_SCALARS = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}
"""The JSON type of a parameter annotated with one of these, which the
platform checks a spec's value against."""
_HANDLE: dict[str, Any] = {"go": "DeploymentHandle", "id": "python:sluice.serve.DeploymentHandle", "handle": True,
                           "input": _ANY, "output": _ANY}  # fmt: skip


def load(import_path: str, app_dir: str | None = None) -> Application:
    """The application MODULE:ATTR names (a bound Application, or a
    Deployment, bound with no arguments), importing MODULE with app_dir
    first on sys.path."""
    mod_name, sep, attr = import_path.partition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"import path {import_path!r}: want MODULE:ATTR")
    if app_dir is not None and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    obj: Any = importing.load_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, Deployment):
        obj = obj.bind()
    if inspect.isclass(obj) or inspect.isfunction(obj):
        name = obj.__name__
        raise TypeError(
            f"import path {import_path}: {name} is a plain {'class' if inspect.isclass(obj) else 'function'}, "
            f"not a deployment: decorate it with @serve.deployment and bind it ({import_path}.bind() in the module)"
        )
    if not isinstance(obj, Application):
        what = type(obj).__name__
        raise TypeError(f"import path {import_path}: a {what}, not an application (a deployment's .bind())")
    return obj


def walk(app: Application) -> dict[str, Application]:
    """The graph's nodes by deployment name, the ingress first; two
    different nodes of one name are refused."""
    nodes: dict[str, Application] = {}

    def visit(node: Application) -> None:
        seen = nodes.get(node.deployment.name)
        if seen is not None:
            if seen is not node:
                raise ValueError(f"two deployments named {node.deployment.name}; use .options(name=...)")
            return
        nodes[node.deployment.name] = node
        for child in node.children():
            visit(child)

    visit(app)
    return nodes


def _bound(node: Application) -> list[Any]:
    return [*node.args, *node.kwargs.values()]


def _literal(v: Any) -> Any:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)  # the replica binds the graph's own value; the spec shows what it is
    return v


def _yields(target: Any) -> bool:
    """Whether the deployment's call (a class's __call__, or a function)
    is a generator: its answer is a stream."""
    fn = getattr(target, "__call__", None) if inspect.isclass(target) else target  # noqa: B004
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def signature_args(target: type) -> list[dict[str, Any]]:
    """The constructor parameters of a class no graph binds, as manifest
    args a spec fills, typed by _param_type; those with a default
    optional. Keyword-only and variadic parameters take nothing from a
    spec's positional args (a required keyword-only one fails the
    replica's start, naming it)."""
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []
    args: list[dict[str, Any]] = []
    for p in params:
        if p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            continue
        arg = _param_type(p.annotation)
        if p.default is not inspect.Parameter.empty:
            arg["optional"] = True
        args.append(arg)
    return args


def _param_type(annotation: Any) -> dict[str, Any]:
    """A constructor parameter's manifest type by its annotation: none,
    python:any (a value or a handle); DeploymentHandle, a handle; int,
    float, str or bool, a value of that JSON type; any other, a value."""
    if annotation is inspect.Parameter.empty:
        return dict(_ANY)
    if _is_handle_type(annotation):
        return dict(_HANDLE)
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    scalar = annotation in (int, float, str, bool) or isinstance(annotation, str)
    if scalar and name in _SCALARS:
        return {"go": name, "id": "python:" + name, "encoding": "json",
                "schema": {"type": _SCALARS[name], "x-go-type": name}}  # fmt: skip
    return {**_VALUE, "go": annotation if isinstance(annotation, str) else repr(annotation)}


def _is_handle_type(annotation: Any) -> bool:
    """Whether a parameter's annotation (an object, or a string under
    `from __future__ import annotations`) names DeploymentHandle."""
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "DeploymentHandle"
    return inspect.isclass(annotation) and issubclass(annotation, DeploymentHandle)


def required_args(target: Any) -> int:
    """How many constructor arguments a spec must give target (a class
    no graph binds; a function takes none)."""
    if not inspect.isclass(target):
        return 0
    return sum(1 for a in signature_args(target) if not a.get("optional"))


def handler(node: Application, ingress: bool = False, unbound: bool = False) -> dict[str, Any]:
    """A deployment as a manifest handler; ingress: the application's;
    unbound: declared by the module but bound by no graph, so a spec gives
    its constructor's arguments."""
    d = node.deployment
    kind = "http" if takes_request(d.target, ingress) else "stream" if d.opts.stream or _yields(d.target) else "unary"
    h: dict[str, Any] = {"name": d.name, "kind": kind, "input": _ANY, "output": _ANY}
    if not inspect.isclass(d.target):
        h["func"] = True
        return h
    if unbound:
        args = signature_args(d.target)
    else:
        args = [dict(_HANDLE) if isinstance(a, (Application, NamedHandle)) else dict(_VALUE) for a in _bound(node)]
    if args:
        h["args"] = args
    if callable(getattr(d.target, "reconfigure", None)):
        h["reconfigure"] = True
    if callable(getattr(d.target, "check_health", None)):
        h["health_check"] = True
    return h


def _spec_arg(a: Any) -> Any:
    if isinstance(a, Application):
        return {"handle": a.deployment.name}
    if isinstance(a, NamedHandle):
        return {"handle": a.deployment_name}
    return _literal(a)


def _outside(nodes: dict[str, Application]) -> list[str]:
    """The deployments the graph's get_deployment_handle names that it
    does not hold."""
    return sorted(
        {a.deployment_name for n in nodes.values() for a in _bound(n) if isinstance(a, NamedHandle)} - set(nodes)
    )


def module_deployments(import_path: str) -> dict[str, Deployment]:
    """The deployments the application's module declares at its top
    level, by name: what a spec may name beside the graph's (a graph that
    mixes code, written in YAML)."""
    mod = sys.modules[import_path.partition(":")[0]]
    found: dict[str, Deployment] = {}
    for v in vars(mod).values():
        if isinstance(v, Deployment):
            found.setdefault(v.name, v)
    return found


def app_spec(
    app: Application, name: str, route_prefix: str | None = None, nodes: dict[str, Application] | None = None
) -> dict[str, Any]:
    """The application as platform/spec's App, in JSON: the deployments of
    nodes (default: the graph's)."""
    nodes = nodes if nodes is not None else walk(app)
    deps = []
    for n, node in nodes.items():
        o = node.deployment.opts
        dep: dict[str, Any] = {"name": n, "handler": n, **o.spec()}
        args = [_spec_arg(a) for a in _bound(node)]
        if args and inspect.isclass(node.deployment.target):
            dep["args"] = args
        deps.append(dep)
    prefix = route_prefix or "/" + name
    return {"name": name, "route_prefix": prefix, "ingress": app.deployment.name, "deployments": deps}


def manifest(import_path: str, app_dir: str | None = None, name: str | None = None) -> dict[str, Any]:
    """The manifest of the application at import_path: its deployments,
    and the other ones its module declares, as handlers (sorted by name)
    and the application itself, named name
    (default: ATTR with '_' as '-')."""
    app = load(import_path, app_dir)
    nodes = walk(app)
    # Every deployment the module declares is a handler a spec may name;
    # one outside the graph is bound with no arguments, and is in the
    # application when a get_deployment_handle names it.
    declared = {n: d.bind() for n, d in module_deployments(import_path).items()}
    bound = set(nodes)
    for n in _outside(nodes):
        if n in declared:
            nodes[n] = declared[n]
    all_nodes = {**declared, **nodes}
    # A deployment a get_deployment_handle names whose constructor needs
    # arguments makes the graph a part a spec in YAML completes.
    partial = bool(_outside(nodes)) or any(required_args(nodes[n].deployment.target) for n in set(nodes) - bound)
    attr = import_path.partition(":")[2].rsplit(".", 1)[-1]
    return {
        "format": FORMAT,
        "protocol": PROTOCOL,
        "sdk": {
            "language": "python",
            "version": sluice.__version__,
            "runtime": "python" + platform.python_version(),
            "platform": sys.platform + "/" + platform.machine(),
            "entry": import_path,
        },
        "handlers": [handler(all_nodes[n], n == app.deployment.name, n not in bound) for n in sorted(all_nodes)],
        # A graph with handles to deployments it does not hold is a part
        # of an application a spec in YAML completes: handlers, no app.
        "apps": [] if partial else [app_spec(app, name or attr.replace("_", "-").lower(), nodes=nodes)],
    }
