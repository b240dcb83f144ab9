"""NVIDIA Triton's Python client (tritonclient.http and tritonclient.grpc),
used exactly as a Triton user would, against the Sluice gateway.

Models the gateway serves (OIP names, version "1" and unversioned):
  doubler  INPUT0 FP32 any shape      -> OUTPUT0 FP32 = 2 * INPUT0
  adder64  A, B INT64 same shape      -> SUM INT64 = A + B
  upper    TEXT BYTES [n]             -> UPPER BYTES, each element upper-cased
"""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

# Seconds one gRPC call may take (the HTTP client has its own timeouts).
CALL_TIMEOUT = 30


class Side:
    """One protocol's client plus the little glue that turns its answers
    (JSON dicts on HTTP, protobuf messages on gRPC) into comparable values.
    Every call goes through the library's public API, unchanged."""

    def __init__(self, kind, client):
        self.kind = kind
        self.client = client
        self.http = kind == "http"
        self.mod = httpclient if self.http else grpcclient
        self.not_found = "404" if self.http else "StatusCode.NOT_FOUND"
        self.kw = {} if self.http else {"client_timeout": CALL_TIMEOUT}

    def live(self):
        return self.client.is_server_live(**self.kw)

    def ready(self):
        return self.client.is_server_ready(**self.kw)

    def model_ready(self, name, version=""):
        return self.client.is_model_ready(name, version, **self.kw)

    def server_metadata(self):
        md = self.client.get_server_metadata(**self.kw)
        if self.http:
            return md
        return {"name": md.name, "version": md.version, "extensions": list(md.extensions)}

    def model_metadata(self, name, version=""):
        md = self.client.get_model_metadata(name, version, **self.kw)
        if self.http:
            return md

        def tensors(ts):
            return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in ts]

        return {
            "name": md.name,
            "versions": list(md.versions),
            "platform": md.platform,
            "inputs": tensors(md.inputs),
            "outputs": tensors(md.outputs),
        }

    def input(self, name, datatype, array, binary=True):
        tensor = self.mod.InferInput(name, list(array.shape), datatype)
        if self.http:
            tensor.set_data_from_numpy(array, binary_data=binary)
        else:
            tensor.set_data_from_numpy(array)  # gRPC always sends raw_input_contents
        return tensor

    def outputs(self, names, mode):
        """mode "default": request no outputs (tritonclient then asks for all
        of them, binary on HTTP); "json"/"binary": name each output."""
        if mode == "default":
            return None
        return [self.mod.InferRequestedOutput(n, binary_data=(mode == "binary")) for n in names]

    def infer(self, model, inputs, **kw):
        return self.client.infer(model, inputs, **kw, **self.kw)

    def response(self, result):
        r = result.get_response()
        if self.http:
            return r
        return {"model_name": r.model_name, "model_version": r.model_version, "id": r.id}


@pytest.fixture(scope="module")
def http_side(http_addr):
    client = httpclient.InferenceServerClient(http_addr, connection_timeout=10.0, network_timeout=30.0)
    yield Side("http", client)
    client.close()


@pytest.fixture(scope="module")
def grpc_side(grpc_addr):
    client = grpcclient.InferenceServerClient(grpc_addr)
    yield Side("grpc", client)
    client.close()


@pytest.fixture(params=["http", "grpc"])
def side(request):
    return request.getfixturevalue(request.param + "_side")


# (protocol, input sent binary, outputs mode — see Side.outputs), by id.
ENCODINGS = [
    pytest.param("http", True, "default", id="http-binary"),
    pytest.param("http", False, "json", id="http-json"),
    pytest.param("http", False, "default", id="http-json-in-binary-out"),
    pytest.param("http", True, "json", id="http-binary-in-json-out"),
    pytest.param("http", False, "binary", id="http-json-in-named-binary-out"),
    pytest.param("grpc", True, "default", id="grpc"),
]
# The two main HTTP encodings and gRPC, for the other models.
MAIN_ENCODINGS = [p for p in ENCODINGS if p.id in ("http-binary", "http-json", "grpc")]


def as_bytes_list(array):
    """BYTES come back as bytes (binary/gRPC) or str (JSON); compare as bytes."""
    return [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.flatten().tolist()]


def assert_error(excinfo, side, *, mentions=()):
    err = excinfo.value
    assert err.status() == side.not_found, f"status {err.status()!r}, want {side.not_found!r}: {err}"
    msg = err.message() or ""
    # tritonclient.http reads the message from the JSON body's "error" key;
    # this text is what it says when that key or the JSON is missing.
    assert "exception occurred in the client" not in msg, f"error body is not {{\"error\": ...}} JSON: {msg}"
    assert msg.strip(), "empty error message"
    for word in mentions:
        assert word in msg, f"error message {msg!r} does not mention {word!r}"


def assert_unknown_version(excinfo, side):
    """HTTP: 404, or another error status whose message names the version;
    gRPC: NOT_FOUND."""
    err = excinfo.value
    if side.http:
        msg = err.message() or ""
        assert err.status() == "404" or ("9" in msg and "version" in msg.lower()), f"[{err.status()}] {msg}"
    else:
        assert err.status() == "StatusCode.NOT_FOUND", err


# ---------------------------------------------------------------- health and metadata


def test_server_live_and_ready(side):
    assert side.live() is True
    assert side.ready() is True


def test_server_metadata(side):
    md = side.server_metadata()
    assert md["name"] == "sluice"


@pytest.mark.parametrize("model", ["doubler", "adder64", "upper"])
def test_model_ready(side, model):
    assert side.model_ready(model) is True
    assert side.model_ready(model, "1") is True


@pytest.mark.parametrize("model,version", [("nope", ""), ("doubler", "9")], ids=["unknown-model", "unknown-version"])
def test_model_not_ready(side, model, version):
    # HTTP: any non-200 reads as "not ready". gRPC: Triton answers NOT_FOUND;
    # ready=false is accepted too.
    try:
        ready = side.model_ready(model, version)
    except InferenceServerException as err:
        assert not side.http, f"tritonclient.http does not raise here: {err}"
        assert err.status() == side.not_found, err
    else:
        assert ready is False


MODEL_IO = {
    "doubler": ([("INPUT0", "FP32")], [("OUTPUT0", "FP32")]),
    "adder64": ([("A", "INT64"), ("B", "INT64")], [("SUM", "INT64")]),
    "upper": ([("TEXT", "BYTES")], [("UPPER", "BYTES")]),
}


@pytest.mark.parametrize("model", list(MODEL_IO))
@pytest.mark.parametrize("version", ["", "1"], ids=["unversioned", "v1"])
def test_model_metadata(side, model, version):
    md = side.model_metadata(model, version)
    assert md["name"] == model
    assert "1" in md["versions"], md
    assert md["platform"] == "sluice"
    want_in, want_out = MODEL_IO[model]
    assert [(t["name"], t["datatype"]) for t in md["inputs"]] == want_in
    assert [(t["name"], t["datatype"]) for t in md["outputs"]] == want_out
    for t in md["inputs"] + md["outputs"]:
        assert all(isinstance(d, int) and (d == -1 or d > 0) for d in t["shape"]), t


def test_model_metadata_unknown_version(side):
    with pytest.raises(InferenceServerException) as excinfo:
        side.model_metadata("doubler", "9")
    assert_unknown_version(excinfo, side)


def test_model_metadata_unknown_model(side):
    with pytest.raises(InferenceServerException) as excinfo:
        side.model_metadata("nope")
    assert_error(excinfo, side, mentions=("nope",))


# ---------------------------------------------------------------- inference


@pytest.mark.parametrize("kind,binary_in,out_mode", ENCODINGS)
def test_infer_doubler(request, kind, binary_in, out_mode):
    side = request.getfixturevalue(kind + "_side")
    x = np.array([[1.5, -2.0, 0.0], [3.25, 1e6, -7.125]], dtype=np.float32)
    result = side.infer(
        "doubler",
        [side.input("INPUT0", "FP32", x, binary_in)],
        outputs=side.outputs(["OUTPUT0"], out_mode),
    )
    assert side.response(result)["model_name"] == "doubler"
    y = result.as_numpy("OUTPUT0")
    assert y is not None, "no OUTPUT0 in the response"
    assert y.dtype == np.float32
    assert y.shape == (2, 3)
    np.testing.assert_array_equal(y, 2 * x)


@pytest.mark.parametrize("shape", [[5], [1, 2, 2]], ids=["rank1", "rank3"])
def test_infer_doubler_other_shapes(side, shape):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) - 1.5
    result = side.infer("doubler", [side.input("INPUT0", "FP32", x)])
    y = result.as_numpy("OUTPUT0")
    assert y.shape == tuple(shape)
    np.testing.assert_array_equal(y, 2 * x)


def test_request_id_echoed(side):
    x = np.ones([1, 3], dtype=np.float32)
    result = side.infer("doubler", [side.input("INPUT0", "FP32", x)], request_id="req-" + side.kind + "-42")
    assert side.response(result).get("id") == "req-" + side.kind + "-42"


@pytest.mark.parametrize("kind,binary_in,out_mode", MAIN_ENCODINGS)
def test_infer_adder64(request, kind, binary_in, out_mode):
    side = request.getfixturevalue(kind + "_side")
    # 2**53 + 1 is not a float64: a JSON path that goes through doubles breaks it.
    a = np.array([1, -2, 2**53 + 1, -(2**62)], dtype=np.int64)
    b = np.array([2, 3, 2, 2**61], dtype=np.int64)
    result = side.infer(
        "adder64",
        [side.input("A", "INT64", a, binary_in), side.input("B", "INT64", b, binary_in)],
        outputs=side.outputs(["SUM"], out_mode),
    )
    assert side.response(result)["model_name"] == "adder64"
    s = result.as_numpy("SUM")
    assert s.dtype == np.int64
    assert s.shape == (4,)
    np.testing.assert_array_equal(s, a + b)


@pytest.mark.parametrize("kind,binary_in,out_mode", MAIN_ENCODINGS)
def test_infer_upper(request, kind, binary_in, out_mode):
    side = request.getfixturevalue(kind + "_side")
    # The non-ASCII characters have no case, so ASCII-only and Unicode
    # upper-casing agree; they check that multi-byte UTF-8 passes intact
    # (in JSON, tritonclient escapes them: "\\u2713", and the emoji as the
    # surrogate pair "\\uD83D\\uDE42").
    words = [b"hello, sluice", b"", "mixed \u2713 \u65e5\u672c \U0001f642 text".encode("utf-8")]
    text = np.array(words, dtype=np.object_)
    result = side.infer(
        "upper",
        [side.input("TEXT", "BYTES", text, binary_in)],
        outputs=side.outputs(["UPPER"], out_mode),
    )
    assert side.response(result)["model_name"] == "upper"
    out = result.as_numpy("UPPER")
    assert out.shape == (3,)
    assert as_bytes_list(out) == [w.upper() for w in words]


# ---------------------------------------------------------------- versions and errors


def test_infer_pinned_version(side):
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    result = side.infer("doubler", [side.input("INPUT0", "FP32", x)], model_version="1")
    response = side.response(result)
    assert response["model_name"] == "doubler"
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * x)


def test_infer_unknown_version(side):
    x = np.ones([2, 3], dtype=np.float32)
    with pytest.raises(InferenceServerException) as excinfo:
        side.infer("doubler", [side.input("INPUT0", "FP32", x)], model_version="9")
    assert_unknown_version(excinfo, side)


def test_infer_unknown_model(side):
    x = np.ones([2, 3], dtype=np.float32)
    with pytest.raises(InferenceServerException) as excinfo:
        side.infer("nope", [side.input("INPUT0", "FP32", x)])
    assert_error(excinfo, side, mentions=("nope",))


# ---------------------------------------------------------------- repository, statistics, configuration


def test_model_repository_index(side):
    index = side.client.get_model_repository_index(**side.kw)
    if side.http:
        entries = [(m["name"], m.get("version", ""), m.get("state", "")) for m in index]
    else:
        entries = [(m.name, m.version, m.state) for m in index.models]
    for model in ("doubler", "adder64", "upper"):
        assert (model, "1", "READY") in entries, entries


def test_inference_statistics(side):
    def successes():
        stats = side.client.get_inference_statistics("doubler", **side.kw)
        if side.http:
            rows = stats["model_stats"]
            assert all(r["name"] == "doubler" for r in rows), rows
            return sum(r["inference_stats"]["success"]["count"] for r in rows)
        assert all(r.name == "doubler" for r in stats.model_stats), stats
        return sum(r.inference_stats.success.count for r in stats.model_stats)

    before = successes()
    x = np.ones([4], dtype=np.float32)
    for _ in range(3):
        side.infer("doubler", [side.input("INPUT0", "FP32", x)])
    # Another test may call doubler at the same time: at least these three.
    assert successes() >= before + 3


def test_model_config(side):
    config = side.client.get_model_config("adder64", **side.kw)
    if side.http:
        inputs = [(t["name"], t["data_type"], list(t["dims"])) for t in config["input"]]
        outputs = [(t["name"], t["data_type"]) for t in config["output"]]
        name = config["name"]
    else:
        cfg = config.config
        dtype = grpcclient.model_config_pb2.DataType.Name
        inputs = [(t.name, dtype(t.data_type), list(t.dims)) for t in cfg.input]
        outputs = [(t.name, dtype(t.data_type)) for t in cfg.output]
        name = cfg.name
    assert name == "adder64"
    assert inputs == [("A", "TYPE_INT64", [-1]), ("B", "TYPE_INT64", [-1])]
    assert outputs == [("SUM", "TYPE_INT64")]


def test_infer_unknown_output(side):
    x = np.ones([2], dtype=np.float32)
    with pytest.raises(InferenceServerException) as excinfo:
        side.infer("doubler", [side.input("INPUT0", "FP32", x)], outputs=[side.mod.InferRequestedOutput("NOPE")])
    err = excinfo.value
    want = "400" if side.http else "StatusCode.INVALID_ARGUMENT"
    assert err.status() == want, f"status {err.status()!r}, want {want!r}: {err}"
    assert "NOPE" in (err.message() or "")
