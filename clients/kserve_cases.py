"""KServe Python SDK checks; test_kserve.py runs each in its own process.

Why a process each: kserve and tritonclient.grpc both register the OIP
protos (package "inference") in protobuf's default descriptor pool, so the
two cannot be imported into one interpreter ("duplicate symbol
'inference.ServerLiveRequest'", kserve/kserve#3099). pytest imports
test_tritonclient.py, so kserve stays out of the pytest process.

    SLUICE_HTTP=host:port SLUICE_GRPC=host:port python clients/kserve_cases.py CASE

Exit 0: passed; 77: skipped (the reason is the last stdout line); other:
failed (traceback on stderr).
"""

import asyncio
import os
import sys

import numpy as np

SKIPPED = 77
CASES = {}


class Skip(Exception):
    pass


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def http_base():
    return "http://" + os.environ["SLUICE_HTTP"]


def grpc_addr():
    return os.environ["SLUICE_GRPC"]


def rest_client():
    import kserve

    return kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=30))


def grpc_client():
    import kserve

    if not hasattr(kserve, "InferenceGRPCClient"):
        raise Skip(f"kserve {kserve.__version__} has no InferenceGRPCClient")
    return kserve.InferenceGRPCClient(grpc_addr(), timeout=30)


def doubler_request(binary, request_id=None, model_version=None):
    """An InferRequest built with the SDK's own classes. binary=True uses
    set_data_from_numpy (REST: binary body; gRPC: raw_input_contents);
    binary=False gives the data as a list (REST: plain JSON body)."""
    import kserve

    x = np.array([[1.5, -2.0, 0.0], [3.25, 1e6, -7.125]], dtype=np.float32)
    if binary:
        tensor = kserve.InferInput("INPUT0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
    else:
        tensor = kserve.InferInput("INPUT0", list(x.shape), "FP32", data=x.flatten().tolist())
    req = kserve.InferRequest(
        model_name="doubler", infer_inputs=[tensor], request_id=request_id, model_version=model_version
    )
    return req, x


def check_doubler(res, x, request_id=None):
    assert res.model_name == "doubler", f"model_name {res.model_name!r}"
    if request_id is not None:
        assert res.id == request_id, f"id {res.id!r}, want {request_id!r}"
    names = [o.name for o in res.outputs]
    assert names == ["OUTPUT0"], f"outputs {names}"
    out = res.outputs[0]
    assert out.datatype == "FP32", out.datatype
    y = out.as_numpy()
    assert list(y.shape) == [2, 3], y.shape
    np.testing.assert_array_equal(y, 2 * x)


# ---------------------------------------------------------------- REST


@case
async def rest_health():
    client = rest_client()
    try:
        for name in ("is_server_live", "is_server_ready", "is_model_ready"):
            if not hasattr(client, name):
                raise Skip(f"InferenceRESTClient has no {name}")
        # The SDK reads {"live": true} / {"ready": true} from the JSON body.
        assert await client.is_server_live(http_base()) is True
        assert await client.is_server_ready(http_base()) is True
        assert await client.is_model_ready(http_base(), "doubler") is True
        assert await client.is_model_ready(http_base(), "nope") is False
    finally:
        await client.close()


@case
async def rest_infer_doubler_binary():
    client = rest_client()
    try:
        req, x = doubler_request(binary=True, request_id="kserve-rest-bin")
        res = await client.infer(http_base(), req, model_name="doubler")
        check_doubler(res, x, "kserve-rest-bin")
    finally:
        await client.close()


@case
async def rest_infer_doubler_json():
    client = rest_client()
    try:
        req, x = doubler_request(binary=False, request_id="kserve-rest-json")
        res = await client.infer(http_base(), req, model_name="doubler")
        check_doubler(res, x, "kserve-rest-json")
    finally:
        await client.close()


@case
async def rest_infer_adder64_json():
    import kserve

    a = [1, -2, 2**53 + 1, -(2**62)]
    b = [2, 3, 2, 2**61]
    req = kserve.InferRequest(
        model_name="adder64",
        infer_inputs=[
            kserve.InferInput("A", [4], "INT64", data=a),
            kserve.InferInput("B", [4], "INT64", data=b),
        ],
    )
    client = rest_client()
    try:
        res = await client.infer(http_base(), req, model_name="adder64")
        assert res.model_name == "adder64", res.model_name
        out = res.get_output_by_name("SUM")
        assert out is not None, [o.name for o in res.outputs]
        assert out.as_numpy().tolist() == [x + y for x, y in zip(a, b)]
    finally:
        await client.close()


@case
async def rest_unknown_model():
    import httpx

    client = rest_client()
    try:
        req, _ = doubler_request(binary=False)
        req.model_name = "nope"
        try:
            await client.infer(http_base(), req, model_name="nope")
        except httpx.HTTPStatusError as err:
            assert err.response.status_code == 404, err
            body = err.response.json()
            assert isinstance(body.get("error"), str) and body["error"], body
        else:
            raise AssertionError("infer on an unknown model succeeded")
    finally:
        await client.close()


# ---------------------------------------------------------------- gRPC


@case
async def grpc_health():
    client = grpc_client()
    try:
        assert await client.is_server_live() is True
        assert await client.is_server_ready() is True
        assert await client.is_model_ready("doubler") is True
    finally:
        await client.close()


@case
async def grpc_infer_doubler():
    client = grpc_client()
    try:
        req, x = doubler_request(binary=True, request_id="kserve-grpc-1")
        res = await client.infer(req)
        check_doubler(res, x, "kserve-grpc-1")
    finally:
        await client.close()


@case
async def grpc_infer_doubler_pinned_version():
    client = grpc_client()
    try:
        req, x = doubler_request(binary=True, model_version="1")
        check_doubler(await client.infer(req), x)
    finally:
        await client.close()


@case
async def grpc_unknown_model():
    import grpc

    client = grpc_client()
    try:
        req, _ = doubler_request(binary=True)
        req.model_name = "nope"
        try:
            await client.infer(req)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, f"{err.code()}: {err.details()}"
        else:
            raise AssertionError("infer on an unknown model succeeded")
    finally:
        await client.close()


def main(argv):
    if len(argv) != 2 or argv[1] not in CASES:
        print(f"usage: {argv[0]} CASE; cases: {', '.join(CASES)}", file=sys.stderr)
        return 2
    try:
        asyncio.run(CASES[argv[1]]())
    except Skip as skip:
        print(f"SKIP: {skip}")
        return SKIPPED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
