"""Scikit-learn models from the registry, served by a Python deployment
that multiplexes them, driven by tritonclient over HTTP and gRPC.

Runs against a platform (`sluice dev`, or a gateway over `sluice node`)
that scripts/pyclients.sh sklearn starts: it trains the three iris
classifiers of examples/python/sklearn/train.py into SLUICE_SKLEARN_MODELS
first. Each test pushes them with `sluice models push --format
sklearn-joblib`, deploys examples/python/sklearn with `sluice deploy
--python`, and talks to the gateway only through tritonclient's public
API, naming the model in the serve_multiplexed_model_id header.

The deployment keeps two models per replica (one replica here), and
tells in each response's parameters what it did: loads started
(attempts), loads done, unloads (evictions), the models it holds.
"""

import json
import os
import subprocess
import tempfile
import uuid

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

# A deploy may build the project's environment (pip installs
# scikit-learn: minutes on a cold cache); each call has its own bound.
pytestmark = pytest.mark.timeout(900)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = ("iris-logistic", "iris-tree", "iris-knn")
HEADER = "serve_multiplexed_model_id"


def models_dir():
    d = os.environ.get("SLUICE_SKLEARN_MODELS", "")
    if not d:
        pytest.fail("SLUICE_SKLEARN_MODELS is not set: run scripts/pyclients.sh sklearn", pytrace=False)
    return d


@pytest.fixture(scope="module")
def cli(http_addr, grpc_addr):
    def run(*args, check=True):
        env = dict(os.environ, SLUICE_ADDR=http_addr)
        out = subprocess.run([os.environ["SLUICE_BIN"], *args], env=env, capture_output=True, text=True, timeout=600)
        if check:
            assert out.returncode == 0, f"sluice {' '.join(args)}: {out.stdout}{out.stderr}"
        return out

    return run


@pytest.fixture(scope="module")
def expected():
    with open(os.path.join(models_dir(), "expected.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def deployed(cli):
    """The application's name and the registry names of this run's models
    (a suffix keeps runs apart on a platform that outlives them)."""
    run = uuid.uuid4().hex[:6]
    names = {m: f"{m}-{run}" for m in MODELS}
    for m, name in names.items():
        cli("models", "push", name, os.path.join(models_dir(), m), "--format", "sklearn-joblib",
            "--signature", os.path.join(models_dir(), "signature.json"))
    app = "iris-" + run
    cli("deploy", "--python", os.path.join(REPO, "examples/python/sklearn"), "--import-path", "app:app",
        "--name", app, "--timeout", "8m")
    yield app, names
    cli("delete", app, check=False)


def http_infer(http_addr, app, model_id, x):
    c = httpclient.InferenceServerClient(http_addr, network_timeout=60)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = c.infer(app, [inp], headers={HEADER: model_id})
    return r.as_numpy("label"), r.as_numpy("probabilities"), r.get_response()["parameters"]


def grpc_infer(grpc_addr, app, model_id, x):
    c = grpcclient.InferenceServerClient(grpc_addr)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = c.infer(app, [inp], headers={HEADER: model_id}, client_timeout=60)
    params = {k: v.string_param if v.HasField("string_param") else v.int64_param
              for k, v in r.get_response().parameters.items()}
    return r.as_numpy("label"), r.as_numpy("probabilities"), params


def check(expected, model, label, proba):
    assert label.tolist() == expected[model]["label"], f"{model}: labels differ from the trained model's"
    np.testing.assert_allclose(proba, np.array(expected[model]["probabilities"], dtype=np.float32), rtol=1e-5, atol=1e-6,
                               err_msg=f"{model}: probabilities differ from the trained model's")


def test_three_models_two_per_replica(deployed, expected, http_addr, grpc_addr):
    app, names = deployed
    x = np.array(expected["input"], dtype=np.float32)
    seen = []
    # logistic, tree, knn, logistic: the third load evicts logistic (least
    # recently used), the fourth request loads it again, evicting tree.
    for model, infer in [("iris-logistic", http_infer), ("iris-tree", grpc_infer), ("iris-knn", http_infer),
                         ("iris-logistic", grpc_infer), ("iris-logistic", http_infer), ("iris-knn", grpc_infer)]:
        addr = http_addr if infer is http_infer else grpc_addr
        label, proba, params = infer(addr, app, names[model], x)
        check(expected, model, label, proba)
        assert params["model_id"] == names[model]
        seen.append((params["loads"], params["unloads"], params["held"]))
    held = lambda *ms: ",".join(names[m] for m in ms)  # noqa: E731
    assert seen == [
        (1, 0, held("iris-logistic")),
        (2, 0, held("iris-tree", "iris-logistic")),
        (3, 1, held("iris-knn", "iris-tree")),
        (4, 2, held("iris-logistic", "iris-knn")),
        (4, 2, held("iris-logistic", "iris-knn")),
        (4, 2, held("iris-knn", "iris-logistic")),
    ], "loads, evictions and the models held, request after request"


def test_a_version_in_the_model_id(deployed, expected, http_addr):
    app, names = deployed
    x = np.array(expected["input"], dtype=np.float32)[:3]
    label, proba, params = http_infer(http_addr, app, names["iris-tree"] + "@1", x)
    check({"t": {k: v[:3] for k, v in expected["iris-tree"].items()}}, "t", label, proba)
    with pytest.raises(InferenceServerException) as exc:
        http_infer(http_addr, app, names["iris-tree"] + "@9", x)
    assert exc.value.status() == "404" and 'no version "9"' in exc.value.message()


def test_bad_input(deployed, expected, cli, http_addr, grpc_addr):
    app, names = deployed
    x = np.array(expected["input"], dtype=np.float32)[:2]
    unknown = "no-such-model-" + uuid.uuid4().hex[:6]
    with pytest.raises(InferenceServerException) as exc:
        http_infer(http_addr, app, unknown, x)
    assert exc.value.status() == "404" and unknown in exc.value.message()
    with pytest.raises(InferenceServerException) as exc:
        grpc_infer(grpc_addr, app, unknown, x)
    assert exc.value.status() == "StatusCode.NOT_FOUND" and unknown in exc.value.message()

    for bad in ("a/b", "../etc", "x" * 200):
        with pytest.raises(InferenceServerException) as exc:
            http_infer(http_addr, app, bad, x)
        assert exc.value.status() == "400" and HEADER in exc.value.message()
        with pytest.raises(InferenceServerException) as exc:
            grpc_infer(grpc_addr, app, bad, x)
        assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"

    # A model whose loader raises: the error names the exception, the
    # replica goes on serving others, and a later request loads again.
    broken = "iris-broken-" + uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "model.joblib"), "wb") as f:
            f.write(b"not a pickle")
        cli("models", "push", broken, d, "--format", "sklearn-joblib")
    _, _, before = http_infer(http_addr, app, names["iris-knn"], x)
    for _ in range(2):
        with pytest.raises(InferenceServerException) as exc:
            http_infer(http_addr, app, broken, x)
        assert exc.value.status() == "500" and f"loading model {broken} raised" in exc.value.message()
    label, proba, after = http_infer(http_addr, app, names["iris-knn"], x)
    check({"k": {k: v[:2] for k, v in expected["iris-knn"].items()}}, "k", label, proba)
    assert after["attempts"] == before["attempts"] + 2, "each request for the broken model tried to load it again"
    cli("models", "push", broken, os.path.join(models_dir(), "iris-tree"), "--format", "sklearn-joblib")
    label, proba, params = http_infer(http_addr, app, broken, x)  # its version 2 loads
    check({"t": {k: v[:2] for k, v in expected["iris-tree"].items()}}, "t", label, proba)


@pytest.fixture(scope="module")
def spread(cli, deployed):
    """The same deployment with two replicas (app:spread), on the same models."""
    _, names = deployed
    app = "iris2-" + uuid.uuid4().hex[:6]
    cli("deploy", "--python", os.path.join(REPO, "examples/python/sklearn"), "--import-path", "app:spread",
        "--name", app, "--timeout", "8m")
    yield app, names
    cli("delete", app, check=False)


def test_each_model_is_served_by_one_replica(spread, expected, http_addr, grpc_addr):
    """The gateway keys a call by its model id, over REST and gRPC alike:
    every call for a model reaches the replica that holds it, and no
    model is held by both replicas."""
    app, names = spread
    x = np.array(expected["input"], dtype=np.float32)[:4]
    served = {m: set() for m in MODELS}
    held = {}
    for _ in range(4):
        for m in MODELS:
            for infer, addr in ((http_infer, http_addr), (grpc_infer, grpc_addr)):
                label, proba, params = infer(addr, app, names[m], x)
                check({m: {k: v[:4] for k, v in expected[m].items()}}, m, label, proba)
                served[m].add(params["replica"])
                held[params["replica"]] = set(filter(None, params["held"].split(",")))
    assert all(len(r) == 1 for r in served.values()), f"a model answered by two replicas: {served}"
    if len(held) == 2:
        a, b = held.values()
        assert not a & b, f"a model held by both replicas: {held}"
