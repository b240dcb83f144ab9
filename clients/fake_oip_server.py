"""A small Open Inference Protocol v2 server with the three test models.

It is the contract the suite in this folder expects, written out: run the
suite against it with `scripts/pyclients.sh selftest` to check the suite
itself (no Go build needed), and read it for the exact wire format the
clients send and accept. It is not part of Sluice. Beside health, metadata
and inference it serves Triton's repository index, statistics (of the
inferences it ran) and model configuration extensions.

    python clients/fake_oip_server.py --http 127.0.0.1:8000 --grpc 127.0.0.1:8001 [--trace]

--trace logs every request (method, path, headers, body head; gRPC method
and metadata) to stderr.
"""

import argparse
import contextlib
import json
import struct
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

NP = {"FP32": "<f4", "INT64": "<i8", "BYTES": object}


def _double(inputs):
    return {"OUTPUT0": ("FP32", inputs["INPUT0"] * np.float32(2))}


def _add(inputs):
    a, b = inputs["A"], inputs["B"]
    if a.shape != b.shape:
        raise BadRequest("A and B must have the same shape")
    return {"SUM": ("INT64", a + b)}


def _upper(inputs):
    text = inputs["TEXT"]
    return {"UPPER": ("BYTES", np.array([s.upper() for s in text.flatten()], dtype=object).reshape(text.shape))}


MODELS = {
    "doubler": {
        "inputs": [("INPUT0", "FP32", [-1])],
        "outputs": [("OUTPUT0", "FP32", [-1])],
        "fn": _double,
    },
    "adder64": {
        "inputs": [("A", "INT64", [-1]), ("B", "INT64", [-1])],
        "outputs": [("SUM", "INT64", [-1])],
        "fn": _add,
    },
    "upper": {
        "inputs": [("TEXT", "BYTES", [-1])],
        "outputs": [("UPPER", "BYTES", [-1])],
        "fn": _upper,
    },
}
VERSIONS = ["1"]


class NotFound(Exception):
    pass


class BadRequest(Exception):
    pass


def lookup(name, version):
    model = MODELS.get(name)
    if model is None:
        raise NotFound(f"model '{name}' not found")
    if version not in ("", *VERSIONS):
        raise NotFound(f"model '{name}' has no version '{version}' (available: {', '.join(VERSIONS)})")
    return model


def metadata(name):
    model = MODELS[name]

    def tensors(ts):
        return [{"name": n, "datatype": d, "shape": s} for n, d, s in ts]

    return {
        "name": name,
        "versions": VERSIONS,
        "platform": "sluice",
        "inputs": tensors(model["inputs"]),
        "outputs": tensors(model["outputs"]),
    }


def repository_index():
    """Every model version, sorted, as POST /v2/repository/index lists them."""
    return [{"name": n, "version": v, "state": "READY", "reason": ""} for n in sorted(MODELS) for v in VERSIONS]


def config_type(datatype):
    """The model configuration's name of an OIP datatype (BYTES is TYPE_STRING)."""
    return "TYPE_STRING" if datatype == "BYTES" else "TYPE_" + datatype


def model_config(name):
    """The model configuration of a model, from its signature (Triton's JSON)."""
    model = MODELS[name]

    def tensors(ts):
        return [{"name": n, "data_type": config_type(d), "dims": s} for n, d, s in ts]

    return {
        "name": name,
        "platform": "sluice",
        "backend": "sluice",
        "max_batch_size": 0,
        "input": tensors(model["inputs"]),
        "output": tensors(model["outputs"]),
    }


class Stats:
    """The inferences this server ran, per model version: successes and
    failures (a model found, its request then refused) with their time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls = {}  # (name, version) -> {"success": [count, ns], "fail": [count, ns], "last": ms}

    @contextlib.contextmanager
    def counted(self, name: str, version: str):
        """Counts the call its block serves: a success unless it raises."""
        start, ok = time.monotonic_ns(), False
        try:
            yield
            ok = True
        finally:
            self._record(name, version or VERSIONS[-1], ok, time.monotonic_ns() - start)

    def _record(self, name: str, version: str, ok: bool, ns: int) -> None:
        with self._lock:
            row = self._calls.setdefault((name, version), {"success": [0, 0], "fail": [0, 0], "last": 0})
            dur = row["success" if ok else "fail"]
            dur[0] += 1
            dur[1] += ns
            row["last"] = time.time_ns() // 1_000_000

    def rows(self, name: str = "", version: str = "") -> list:
        """model_stats of a model version (every version when version is
        empty, every model when name is empty); NotFound for unknown ones."""
        if name:
            lookup(name, version)
        out = []
        for n in [name] if name else sorted(MODELS):
            for v in [version] if version else VERSIONS:
                out.append(self._row(n, v))
        return out

    def _row(self, name: str, version: str) -> dict:
        with self._lock:
            row = self._calls.get((name, version), {"success": [0, 0], "fail": [0, 0], "last": 0})
            (ok, ok_ns), (bad, bad_ns), last = row["success"], row["fail"], row["last"]
        zero = {"count": 0, "ns": 0}
        return {
            "name": name,
            "version": version,
            "last_inference": last,
            "inference_count": ok,
            "execution_count": ok,
            "inference_stats": {
                "success": {"count": ok, "ns": ok_ns},
                "fail": {"count": bad, "ns": bad_ns},
                "queue": zero,
                "compute_input": zero,
                "compute_infer": zero,
                "compute_output": zero,
            },
            "batch_stats": [],
        }


STATS = Stats()


def decode_bytes(raw):
    out, off = [], 0
    while off < len(raw):
        if off + 4 > len(raw):
            raise BadRequest("truncated BYTES element length")
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        if off + n > len(raw):
            raise BadRequest("truncated BYTES element")
        out.append(bytes(raw[off : off + n]))
        off += n
    return out


def encode_bytes(arr):
    return b"".join(struct.pack("<I", len(s)) + s for s in arr.flatten())


def from_raw(datatype, shape, raw):
    if datatype == "BYTES":
        arr = np.array(decode_bytes(raw), dtype=object)
    else:
        arr = np.frombuffer(raw, dtype=NP[datatype])
    if arr.size != int(np.prod(shape)):
        raise BadRequest(f"data has {arr.size} elements, shape {shape} needs {int(np.prod(shape))}")
    return arr.reshape(shape)


def from_json(datatype, shape, data):
    flat = np.array(data, dtype=object).flatten().tolist()
    if datatype == "BYTES":
        arr = np.array([s.encode() if isinstance(s, str) else bytes(s) for s in flat], dtype=object)
    else:
        arr = np.array(flat, dtype=NP[datatype])
    if arr.size != int(np.prod(shape)):
        raise BadRequest(f"data has {arr.size} elements, shape {shape} needs {int(np.prod(shape))}")
    return arr.reshape(shape)


def run_model(model, inputs):
    want = {n: d for n, d, _ in model["inputs"]}
    for name, (datatype, _) in inputs.items():
        if name not in want:
            raise BadRequest(f"unexpected input '{name}'")
        if want[name] != datatype:
            raise BadRequest(f"input '{name}' must be {want[name]}, got {datatype}")
    missing = set(want) - set(inputs)
    if missing:
        raise BadRequest(f"missing inputs {sorted(missing)}")
    return model["fn"]({n: a for n, (_, a) in inputs.items()})


def output_names(model, requested):
    """The outputs to answer: those requested (every one when none), each
    of them one the model has."""
    have = [n for n, _, _ in model["outputs"]]
    for n in requested:
        if n not in have:
            raise BadRequest(f"unknown output '{n}' (the model's outputs: {', '.join(have)})")
    return list(requested) or have


# ---------------------------------------------------------------- REST


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    trace = False

    def log_message(self, fmt, *args):  # quiet unless --trace
        pass

    def _trace(self, body=b""):
        if self.trace:
            hdrs = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
            print(f"REST {self.command} {self.path} [{hdrs}] body={body[:300]!r}", file=sys.stderr, flush=True)

    def _send(self, status, body, ctype="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, msg):
        self._send(status, {"error": msg})

    def _route(self):
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if not parts or parts[0] != "v2":
            return None
        rest = parts[1:]
        if rest == []:
            return ("server",)
        if rest == ["health", "live"]:
            return ("live",)
        if rest == ["health", "ready"]:
            return ("ready",)
        if rest == ["repository", "index"]:
            return ("index",)
        if rest == ["models", "stats"]:
            return ("stats", "", "")
        if len(rest) >= 2 and rest[0] == "models":
            name, tail, version = rest[1], rest[2:], ""
            if len(tail) >= 2 and tail[0] == "versions":
                version, tail = tail[1], tail[2:]
            if tail == []:
                return ("metadata", name, version)
            if tail == ["ready"]:
                return ("model_ready", name, version)
            if tail == ["infer"]:
                return ("infer", name, version)
            if tail == ["stats"]:
                return ("stats", name, version)
            if tail == ["config"]:
                return ("config", name, version)
        return None

    def do_GET(self):
        self._trace()
        route = self._route()
        try:
            if route == ("server",):
                return self._send(200, {"name": "sluice", "version": "0", "extensions": []})
            if route == ("live",):
                return self._send(200, {"live": True})
            if route == ("ready",):
                return self._send(200, {"ready": True})
            if route and route[0] == "metadata":
                lookup(route[1], route[2])
                return self._send(200, metadata(route[1]))
            if route and route[0] == "model_ready":
                lookup(route[1], route[2])
                return self._send(200, {"name": route[1], "ready": True})
            if route and route[0] == "stats":
                return self._send(200, {"model_stats": STATS.rows(route[1], route[2])})
            if route and route[0] == "config":
                lookup(route[1], route[2])
                return self._send(200, model_config(route[1]))
        except NotFound as e:
            return self._error(404, str(e))
        self._error(404, f"no route for GET {self.path}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self._trace(body)
        route = self._route()
        if route == ("index",):
            return self._index(body)
        if not route or route[0] != "infer":
            return self._error(404, f"no route for POST {self.path}")
        try:
            model = lookup(route[1], route[2])
            with STATS.counted(route[1], route[2]):
                self._infer(route[1], route[2], model, body)
        except NotFound as e:
            self._error(404, str(e))
        except (BadRequest, ValueError, KeyError, TypeError) as e:
            self._error(400, f"bad request: {e}")

    def _index(self, body):
        """POST /v2/repository/index: the body, when any, is {"ready": bool};
        every model here is ready, so the answer is the same either way."""
        try:
            req = json.loads(body) if body.strip() else {}
        except ValueError as e:
            return self._error(400, f"bad repository index request: {e}")
        if not isinstance(req, dict):
            return self._error(400, "bad repository index request: want a JSON object")
        self._send(200, repository_index())

    def _infer(self, name, version, model, body):
        hlen = self.headers.get("Inference-Header-Content-Length")
        hlen = int(hlen) if hlen is not None else len(body)
        req = json.loads(body[:hlen])
        blob, off = body[hlen:], 0
        inputs = {}
        for t in req.get("inputs", []):
            size = (t.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                arr = from_raw(t["datatype"], t["shape"], blob[off : off + size])
                off += size
            else:
                arr = from_json(t["datatype"], t["shape"], t["data"])
            inputs[t["name"]] = (t["datatype"], arr)
        requested = {o["name"]: o.get("parameters") or {} for o in req.get("outputs") or []}
        names = output_names(model, requested)
        results = run_model(model, inputs)
        default_binary = bool((req.get("parameters") or {}).get("binary_data_output", False))
        outputs, raws = [], []
        for n in names:
            datatype, arr = results[n]
            out = {"name": n, "datatype": datatype, "shape": list(arr.shape)}
            if requested.get(n, {}).get("binary_data", default_binary):
                raw = encode_bytes(arr) if datatype == "BYTES" else np.ascontiguousarray(arr, NP[datatype]).tobytes()
                out["parameters"] = {"binary_data_size": len(raw)}
                raws.append(raw)
            elif datatype == "BYTES":
                out["data"] = [s.decode() for s in arr.flatten()]
            else:
                out["data"] = arr.flatten().tolist()
            outputs.append(out)
        resp = {"model_name": name, "model_version": version or VERSIONS[-1], "outputs": outputs}
        if req.get("id"):
            resp["id"] = req["id"]
        head = json.dumps(resp).encode()
        if raws:
            self._send(
                200,
                head + b"".join(raws),
                "application/octet-stream",
                {"Inference-Header-Content-Length": str(len(head))},
            )
        else:
            self._send(200, head)


# ---------------------------------------------------------------- gRPC


class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    trace = False

    def _trace(self, method, context, request=None):
        if self.trace:
            md = dict(context.invocation_metadata())
            print(f"GRPC {method} metadata={md} request={str(request)[:300]!r}", file=sys.stderr, flush=True)

    def _lookup(self, context, name, version):
        try:
            return lookup(name, version)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))

    def ServerLive(self, request, context):
        self._trace("ServerLive", context)
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        self._trace("ServerReady", context)
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        self._trace("ModelReady", context, request)
        self._lookup(context, request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request, context):
        self._trace("ServerMetadata", context)
        return service_pb2.ServerMetadataResponse(name="sluice", version="0")

    def ModelMetadata(self, request, context):
        self._trace("ModelMetadata", context, request)
        self._lookup(context, request.name, request.version)
        md = metadata(request.name)
        resp = service_pb2.ModelMetadataResponse(name=md["name"], versions=md["versions"], platform=md["platform"])
        for field in ("inputs", "outputs"):
            for t in md[field]:
                getattr(resp, field).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        return resp

    def RepositoryIndex(self, request, context):
        self._trace("RepositoryIndex", context, request)
        resp = service_pb2.RepositoryIndexResponse()
        for e in repository_index():
            resp.models.add(**e)
        return resp

    def ModelStatistics(self, request, context):
        self._trace("ModelStatistics", context, request)
        try:
            rows = STATS.rows(request.name, request.version)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        resp = service_pb2.ModelStatisticsResponse()
        for r in rows:
            resp.model_stats.add(
                name=r["name"],
                version=r["version"],
                last_inference=r["last_inference"],
                inference_count=r["inference_count"],
                execution_count=r["execution_count"],
                inference_stats=service_pb2.InferStatistics(
                    **{k: service_pb2.StatisticDuration(**d) for k, d in r["inference_stats"].items()}
                ),
            )
        return resp

    def ModelConfig(self, request, context):
        self._trace("ModelConfig", context, request)
        self._lookup(context, request.name, request.version)
        c = model_config(request.name)
        cfg = model_config_pb2.ModelConfig(
            name=c["name"], platform=c["platform"], backend=c["backend"], max_batch_size=c["max_batch_size"]
        )
        for field in ("input", "output"):
            for t in c[field]:
                dtype = model_config_pb2.DataType.Value(t["data_type"])
                getattr(cfg, field).add(name=t["name"], data_type=dtype, dims=t["dims"])
        return service_pb2.ModelConfigResponse(config=cfg)

    def ModelInfer(self, request, context):
        self._trace("ModelInfer", context, request)
        model = self._lookup(context, request.model_name, request.model_version)
        with STATS.counted(request.model_name, request.model_version):
            return self._infer(context, model, request)

    def _infer(self, context, model, request):
        try:
            inputs = {}
            for i, t in enumerate(request.inputs):
                shape = list(t.shape)
                if i < len(request.raw_input_contents):
                    arr = from_raw(t.datatype, shape, request.raw_input_contents[i])
                elif t.datatype == "BYTES":
                    arr = np.array(list(t.contents.bytes_contents), dtype=object).reshape(shape)
                elif t.datatype == "FP32":
                    arr = np.array(t.contents.fp32_contents, dtype="<f4").reshape(shape)
                else:
                    arr = np.array(t.contents.int64_contents, dtype="<i8").reshape(shape)
                inputs[t.name] = (t.datatype, arr)
            names = output_names(model, [o.name for o in request.outputs])
            results = run_model(model, inputs)
        except (BadRequest, ValueError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        resp = service_pb2.ModelInferResponse(
            model_name=request.model_name, model_version=request.model_version or VERSIONS[-1], id=request.id
        )
        for n in names:
            datatype, arr = results[n]
            resp.outputs.add(name=n, datatype=datatype, shape=list(arr.shape))
            raw = encode_bytes(arr) if datatype == "BYTES" else np.ascontiguousarray(arr, NP[datatype]).tobytes()
            resp.raw_output_contents.append(raw)
        return resp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--http", required=True, help="REST listen host:port")
    ap.add_argument("--grpc", required=True, help="gRPC listen host:port")
    ap.add_argument("--trace", action="store_true", help="log every request to stderr")
    args = ap.parse_args()
    Handler.trace = Servicer.trace = args.trace

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
    server.add_insecure_port(args.grpc)
    server.start()

    host, port = args.http.rsplit(":", 1)
    httpd = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"fake OIP server: REST {args.http}, gRPC {args.grpc}", file=sys.stderr, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
