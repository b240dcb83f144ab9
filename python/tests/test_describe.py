"""python -m sluice describe: the manifest the platform checks a
python-project bundle against, and the application it deploys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.protocol import HTTPRequest
from sluice.serve.describe import manifest
from sluice.serve.http import Request

APP = """
from sluice import serve


@serve.deployment
class Upper:
    def __call__(self, text: str) -> str:
        return text.upper()


@serve.deployment(num_replicas=2, max_ongoing_requests=7)
class Greeter:
    def __init__(self, upper, greeting: str) -> None:
        self.upper = upper
        self.greeting = greeting

    def reconfigure(self, cfg: dict) -> None:
        pass

    async def __call__(self, body: dict) -> dict:
        return {"greeting": self.greeting + " " + await self.upper.remote(body["name"])}


@serve.deployment(stream=True)
def count(n: int):
    yield from range(n)


greet_app = Greeter.bind(Upper.bind(), "hello")


@serve.deployment
class Web:
    def __init__(self, upper) -> None:
        self.upper = upper

    async def __call__(self, request: serve.Request) -> str:
        return "hi"


web_app = Web.bind(Upper.bind())
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "greetmod.py").write_text(APP)
    (tmp_path / "broken.py").write_text("import greetmod\n\napp = greetmod.nope\n")
    (tmp_path / "syntax.py").write_text("from sluice import serve\n\ndef f(:\n    pass\n")
    (tmp_path / "plain.py").write_text("class Plain:\n    def __call__(self, x):\n        return x\n")
    return tmp_path


def test_manifest(project: Path) -> None:
    m = manifest("greetmod:greet_app", str(project))
    assert m["format"] == 1 and m["protocol"] == 1  # claim checks read and written
    assert m["sdk"]["language"] == "python" and m["sdk"]["entry"] == "greetmod:greet_app"
    hs = {h["name"]: h for h in m["handlers"]}
    assert [h["name"] for h in m["handlers"]] == ["Greeter", "Upper", "Web", "count"], "the module's, sorted"
    g = hs["Greeter"]
    assert g["kind"] == "unary" and g.get("reconfigure") is True
    assert [a.get("handle", False) for a in g["args"]] == [True, False]
    assert "args" not in hs["Upper"]
    (app,) = m["apps"]
    assert app["name"] == "greet-app" and app["route_prefix"] == "/greet-app" and app["ingress"] == "Greeter"
    deps = {d["name"]: d for d in app["deployments"]}
    assert deps["Greeter"]["args"] == [{"handle": "Upper"}, "hello"]
    assert deps["Greeter"]["replicas"] == {"min": 2, "initial": 2, "max": 2}
    assert deps["Greeter"]["max_ongoing_requests"] == 7


def test_an_http_ingress(project: Path) -> None:
    m = manifest("greetmod:web_app", str(project))
    kinds = {h["name"]: h["kind"] for h in m["handlers"]}
    # The module's other deployments are handlers too (a spec may name them).
    assert kinds == {"Web": "http", "Upper": "unary", "Greeter": "unary", "count": "stream"}
    assert [d["name"] for d in m["apps"][0]["deployments"]] == ["Web", "Upper"]


OPTIONS_APP = """
from sluice import serve


@serve.deployment(autoscaling_config={"min_replicas": 1, "max_replicas": 4}, user_config={"k": 1},
                  ray_actor_options={"num_gpus": 0.5, "memory": 1024})
class Model:
    def __call__(self, x):
        return x

    def predict(self, x):
        yield x


@serve.deployment
class Front:
    def __init__(self, model, go):
        self.model, self.go = model, go

    def __call__(self, x):
        return x


part = Front.bind(Model.bind(), serve.get_deployment_handle("Elsewhere"))


@serve.deployment
def GoSide(x):
    return x


whole = Front.bind(Model.bind(), serve.get_deployment_handle("GoSide"))
"""


def test_options_and_named_handles_in_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "optmod.py").write_text(OPTIONS_APP)
    assert manifest("optmod:part", str(tmp_path))["apps"] == [], "Elsewhere is not declared: a part of an app"
    m = manifest("optmod:whole", str(tmp_path))
    deps = {d["name"]: d for d in m["apps"][0]["deployments"]}
    model = deps["Model"]
    assert model["replicas"] == {"min": 1, "initial": 1, "max": 4}
    assert model["autoscaling"]["target_ongoing_requests"] == 2.0, "Ray's default"
    assert model["user_config"] == {"k": 1} and model["resources"] == {"memory": 1024, "gpu": 0.5}
    assert deps["Front"]["args"] == [{"handle": "Model"}, {"handle": "GoSide"}]
    front = {h["name"]: h for h in m["handlers"]}["Front"]
    assert [a.get("handle") for a in front["args"]] == [True, True]


async def test_the_request_without_starlette() -> None:
    r = Request(HTTPRequest("POST", "/x", "a=1&b=2", {"x-k": ["v"]}), b'{"n": 1}', "application/json")
    assert (r.method, r.url.path, r.url.query) == ("POST", "/x", "a=1&b=2")
    assert r.query_params == {"a": "1", "b": "2"} and r.headers["x-k"] == "v"
    assert r.headers["content-type"] == "application/json"
    assert await r.json() == {"n": 1} and await r.body() == b'{"n": 1}'


def test_stream_function(project: Path) -> None:
    m = manifest("greetmod:count", str(project), name="counter")
    h = {h["name"]: h for h in m["handlers"]}["count"]
    assert h == {**h, "name": "count", "kind": "stream", "func": True}
    assert m["apps"][0]["name"] == "counter"


def test_cli_json_and_a_broken_import(project: Path) -> None:
    run = [sys.executable, "-m", "sluice", "describe", "--json", "--app-dir", str(project)]
    ok = subprocess.run([*run, "--import-path", "greetmod:greet_app"], capture_output=True, text=True, check=True)
    assert json.loads(ok.stdout)["apps"][0]["ingress"] == "Greeter"
    bad = subprocess.run([*run, "--import-path", "broken:app"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "AttributeError" in bad.stderr and "broken.py:3" in bad.stderr
    missing = subprocess.run([*run, "--import-path", "greetmod:nothing"], capture_output=True, text=True)
    assert missing.returncode == 2 and "AttributeError" in missing.stderr and "describe.py" not in missing.stderr
    not_app = subprocess.run([*run, "--import-path", "greetmod:serve"], capture_output=True, text=True)
    assert not_app.returncode == 2 and "TypeError" in not_app.stderr and "not an application" in not_app.stderr
    syntax = subprocess.run([*run, "--import-path", "syntax:app"], capture_output=True, text=True)
    assert syntax.returncode == 2 and "SyntaxError" in syntax.stderr and "syntax.py:3: def f(:" in syntax.stderr
    assert "importlib" not in syntax.stderr
    plain = subprocess.run([*run, "--import-path", "plain:Plain"], capture_output=True, text=True)
    assert plain.returncode == 2 and "Plain is a plain class, not a deployment" in plain.stderr


RAY_STYLE = """
from sluice import serve
from sluice.serve.handle import DeploymentHandle


@serve.deployment
class Classifier:
    def __init__(self, greeter: DeploymentHandle) -> None:
        self.greeter = greeter

    async def __call__(self, http_request):
        body = await http_request.json()
        return await self.greeter.say_hello.remote(body["name"])


@serve.deployment
class Greeter:
    def say_hello(self, request):
        return "Hola " + request


@serve.deployment
class Plain:
    def __call__(self, value):
        return value


classifier = Classifier.bind(Greeter.bind())
plain = Plain.bind()
serve.run(classifier)
raise SystemExit("the platform's import went on past serve.run")
"""


def test_ray_style_module_with_serve_run_at_its_top_level(tmp_path: Path) -> None:
    """A module written as Ray Serve's examples are: the ingress's HTTP
    request an unannotated parameter named http_request, and serve.run
    called at the module's top level. The platform's import stops at
    serve.run (nothing after it runs, nothing is deployed) and reads what
    was defined before it; the ingress takes the HTTP request, a
    deployment's unannotated parameter elsewhere (and an ingress's named
    otherwise) takes the decoded body."""
    (tmp_path / "raystyle.py").write_text(RAY_STYLE)
    m = manifest("raystyle:classifier", str(tmp_path))
    kinds = {h["name"]: h["kind"] for h in m["handlers"]}
    assert kinds == {"Classifier": "http", "Greeter": "unary", "Plain": "unary"}
    assert m["apps"][0]["ingress"] == "Classifier"
    assert {h["name"]: h["kind"] for h in manifest("raystyle:plain", str(tmp_path))["handlers"]}["Plain"] == "unary"
    run = [sys.executable, "-m", "sluice", "describe", "--json", "--app-dir", str(tmp_path)]
    out = subprocess.run([*run, "--import-path", "raystyle:classifier"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["apps"][0]["name"] == "classifier"


UNBOUND_APP = """
from sluice import serve
from sluice.serve import DeploymentHandle


@serve.deployment
class Inner:
    def __call__(self, x):
        return x


@serve.deployment
class Scaled:
    def __init__(self, inner: DeploymentHandle, factor: int = 2, *rest, label: str = "x") -> None:
        self.inner, self.factor = inner, factor

    async def __call__(self, x):
        return self.factor * await self.inner.remote(x)


@serve.deployment
class Loose:
    def __init__(self, anything, more="m") -> None:
        self.anything = anything


app = Inner.bind()
part = Loose.bind(serve.get_deployment_handle("Scaled"))
"""


def _greetmod(tmp_path: Path) -> Path:
    d = tmp_path / "greet"
    d.mkdir()
    (d / "greetmod.py").write_text(APP)
    return d


def test_a_class_no_graph_binds_is_described_by_its_signature(tmp_path: Path) -> None:
    (tmp_path / "unbound.py").write_text(UNBOUND_APP)
    m = manifest("unbound:app", str(tmp_path))
    hs = {h["name"]: h for h in m["handlers"]}
    scaled = hs["Scaled"]["args"]
    # inner a handle, factor an optional value; *rest and the keyword-only
    # label take nothing from a spec's positional args.
    assert [(a.get("handle", False), a.get("optional", False)) for a in scaled] == [(True, False), (False, True)]
    # An annotated scalar is a value of its JSON type, which the platform
    # checks a spec's value against.
    assert scaled[1]["id"] == "python:int" and scaled[1]["schema"]["type"] == "integer"
    loose = hs["Loose"]["args"]
    assert [(a.get("handle", False), a.get("optional", False), a["id"]) for a in loose] == [
        (False, False, "python:any"),
        (False, True, "python:any"),
    ], "an unannotated parameter states no type: a value or a handle"
    assert "args" not in hs["Inner"], "bound with no arguments by the graph"
    # A value the graph binds is a value: a spec cannot give a handle there.
    greeter = {h["name"]: h for h in manifest("greetmod:greet_app", str(_greetmod(tmp_path)))["handlers"]}["Greeter"]
    assert [a["id"] for a in greeter["args"]] == ["python:sluice.serve.DeploymentHandle", "python:value"]
    assert [d["name"] for d in m["apps"][0]["deployments"]] == ["Inner"]
    # A handle to a declared class whose constructor needs arguments: the
    # graph is a part a spec in YAML completes, not an application.
    assert manifest("unbound:part", str(tmp_path))["apps"] == []


def test_spec_args_bind_a_class_no_graph_binds(tmp_path: Path) -> None:
    (tmp_path / "unbound2.py").write_text(UNBOUND_APP)
    from sluice.serve.describe import load, module_deployments
    from sluice.serve.hosted import spec_bound
    from sluice.serve.lookup import NamedHandle

    load("unbound2:app", str(tmp_path))
    scaled = module_deployments("unbound2:app")["Scaled"].bind()
    node = spec_bound(scaled, '[{"handle": "Inner"}, 5]')
    assert node.args == (NamedHandle("Inner"), 5)
    with pytest.raises(ValueError, match=r"do not fit Scaled: missing a required argument: 'inner'"):
        spec_bound(scaled, "")
    # An object with more keys than "handle" is a value.
    assert spec_bound(scaled, '[{"handle": "Inner", "x": 1}]').args == ({"handle": "Inner", "x": 1},)
    with pytest.raises(ValueError, match=r"deployment Scaled: the spec's args do not fit Scaled: .*argument"):
        spec_bound(scaled, "[]")
    with pytest.raises(ValueError, match="not a list"):
        spec_bound(scaled, '{"a": 1}')
    with pytest.raises(ValueError, match="not JSON"):
        spec_bound(scaled, "[1,")
    inner = module_deployments("unbound2:app")["Inner"].bind()
    assert spec_bound(inner, "").args == (), "a class taking nothing, given nothing"
    with pytest.raises(ValueError, match="do not fit Inner"):
        spec_bound(inner, "[1]")
