"""TensorFlow SavedModels served from the registry, driven by tritonclient.

Runs against `sluice dev` built with the `tensorflow` tag, on a real Kafka
broker and a real MinIO (scripts/pyclients.sh tf sets that up). Each test
pushes SavedModels with `sluice models push`, deploys a `kind: model`
application with `sluice deploy`, and talks to the gateway only through
tritonclient's public API.

SLUICE_BIN is the sluice binary; SLUICE_FIXTURES the directory of the
SavedModel fixtures (replicas/runtime/testdata).
"""

import os
import subprocess
import tempfile
import threading
import time
import uuid

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

CALL_TIMEOUT = 30


def sluice(*args, grpc_addr, http_addr):
    env = dict(os.environ, SLUICE_ADDR=http_addr)
    out = subprocess.run([os.environ["SLUICE_BIN"], *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"sluice {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def cli(http_addr, grpc_addr):
    def run(*args):
        if args[0] == "models":
            args = (args[0], args[1], "--grpc-addr", grpc_addr, *args[2:])
        return sluice(*args, grpc_addr=grpc_addr, http_addr=http_addr)

    return run


def fixture(name):
    return os.path.join(os.environ["SLUICE_FIXTURES"], name)


@pytest.fixture(scope="module")
def app(cli):
    """A model application serving every model labelled with this run's
    suite label, by default at its production alias."""
    label = "tf-" + uuid.uuid4().hex[:8]
    spec = f"""name: {label}
route_prefix: /{label}
ingress: serve
deployments:
  - name: serve
    kind: model
    max_models_per_replica: 2
    replicas: {{min: 2, initial: 2, max: 2}}
    model:
      selector: {{suite: {label}}}
      default_version: "@production"
"""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(spec)
    cli("deploy", "-f", f.name)
    yield label
    cli("delete", label)
    os.unlink(f.name)


def push(cli, label, model, path, *extra):
    return cli("models", "push", model, fixture(path), "--label", f"suite={label}", *extra)


def affine_input(mod, xs):
    x = np.array(xs, dtype=np.float32).reshape(-1, 1)
    t = mod.InferInput("x", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    return t, x


@pytest.fixture(scope="module")
def http(http_addr):
    c = httpclient.InferenceServerClient(http_addr, network_timeout=CALL_TIMEOUT, concurrency=4)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc(grpc_addr):
    c = grpcclient.InferenceServerClient(grpc_addr)
    yield c
    c.close()


def test_savedmodel_pushed_with_cli_answers_over_http_and_grpc(cli, app, http, grpc):
    model = app + "-affine"
    out = push(cli, app, model, "affine_v1", "--alias", "production")
    assert "pushed" in out and "version 1" in out
    md = http.get_model_metadata(model)
    assert md["platform"] == "tensorflow-savedmodel"
    assert md["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}]
    assert md["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]

    t, x = affine_input(httpclient, [0.0, 1.5, -2.0, 10.0])
    res = http.infer(model, [t], outputs=[httpclient.InferRequestedOutput("y", binary_data=True)])
    np.testing.assert_allclose(res.as_numpy("y"), 2 * x + 1, rtol=1e-6)
    assert res.get_response()["model_version"] == "1"

    t, x = affine_input(grpcclient, [3.0, 4.0])
    res = grpc.infer(model, [t], model_version="1", client_timeout=CALL_TIMEOUT)
    np.testing.assert_allclose(res.as_numpy("y"), 2 * x + 1, rtol=1e-6)

    # Loaded now: the replicas report it, and ready says so.
    deadline = time.time() + 15
    while not http.is_model_ready(model) and time.time() < deadline:
        time.sleep(0.1)
    assert http.is_model_ready(model)
    assert grpc.is_model_ready(model)


def test_classifier_probabilities(cli, app, http):
    model = app + "-classifier"
    push(cli, app, model, "classifier", "--alias", "production")
    x = np.array([[1, 0, 0, 0], [0, 2, 0, 1], [5, 5, 5, 5]], dtype=np.float32)
    t = httpclient.InferInput("x", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    p = http.infer(model, [t]).as_numpy("probabilities")
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(axis=1), np.ones(3), rtol=1e-5)
    assert (p >= 0).all()


def test_bytes_in_int64_and_bytes_out(cli, app, grpc):
    model = app + "-text"
    push(cli, app, model, "text", "--alias", "production")
    words = np.array([[b"kafka"], [b"sluice"], [b""]], dtype=np.object_)
    t = grpcclient.InferInput("text", list(words.shape), "BYTES")
    t.set_data_from_numpy(words)
    res = grpc.infer(model, [t], client_timeout=CALL_TIMEOUT)
    assert res.as_numpy("length").tolist() == [[5], [6], [0]]
    assert res.as_numpy("upper").tolist() == [[b"KAFKA"], [b"SLUICE"], [b""]]


def test_wrong_input_is_400_naming_it(cli, app, http):
    model = app + "-strict"
    push(cli, app, model, "affine_v1", "--alias", "production")
    x = np.ones((1, 1), dtype=np.int64)
    t = httpclient.InferInput("x", [1, 1], "INT64")
    t.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as e:
        http.infer(model, [t])
    assert "400" in str(e.value.status()) and "input x" in e.value.message()


def test_alias_move_changes_answers_with_no_failed_request(cli, app, http_addr):
    model = app + "-moving"
    push(cli, app, model, "affine_v1", "--alias", "production")
    client = httpclient.InferenceServerClient(http_addr, network_timeout=CALL_TIMEOUT)
    t, x = affine_input(httpclient, [1.0])
    assert client.infer(model, [t]).as_numpy("y")[0][0] == pytest.approx(3.0)

    seen = {"v1": 0, "v2": 0}
    failures = []
    stop = threading.Event()

    def loop():
        c = httpclient.InferenceServerClient(http_addr, network_timeout=CALL_TIMEOUT)
        t, _ = affine_input(httpclient, [1.0])
        while not stop.is_set():
            try:
                y = c.infer(model, [t]).as_numpy("y")[0][0]
            except InferenceServerException as e:  # any failure fails the test
                failures.append(str(e))
                continue
            if y == pytest.approx(3.0):
                seen["v1"] += 1
            elif y == pytest.approx(4.0):
                seen["v2"] += 1
            else:
                failures.append(f"unexpected y={y}")
        c.close()

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for th in threads:
        th.start()
    try:
        time.sleep(0.5)
        push(cli, app, model, "affine_v2")
        cli("models", "alias", model, "production", "2")
        deadline = time.time() + 30
        while seen["v2"] < 100 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not failures, failures[:3]
    assert seen["v1"] > 0 and seen["v2"] >= 100, seen
