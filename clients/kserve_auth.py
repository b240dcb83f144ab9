"""One inference of the doubler through the KServe SDK with an optional
bearer token, for test_auth.py (a child interpreter: kserve cannot be
imported next to tritonclient.grpc). Prints one JSON line: the output,
or the HTTP status / gRPC code the call failed with.

    python kserve_auth.py http|grpc HTTP_ADDR GRPC_ADDR [TOKEN]
"""

import asyncio
import json
import os
import sys

import kserve
import numpy as np

CA = os.environ.get("SLUICE_CA_FILE")


def request():
    tensor = kserve.InferInput("INPUT0", [2], "FP32")
    tensor.set_data_from_numpy(np.array([1, 2.5], dtype=np.float32))
    return kserve.InferRequest(model_name="doubler", infer_inputs=[tensor])


async def infer(kind, http_addr, grpc_addr, token):
    headers = {"authorization": "Bearer " + token} if token else None
    if kind == "http":
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=30, verify=CA or True))
        base = ("https://" if CA else "http://") + http_addr
        try:
            return await client.infer(base, request(), model_name="doubler", headers=headers)
        finally:
            await client.close()
    client = kserve.InferenceGRPCClient(grpc_addr, use_ssl=bool(CA), root_certificates=CA, timeout=30)
    try:
        return await client.infer(request(), headers=list(headers.items()) if headers else None)
    finally:
        await client.close()


def main():
    kind, http_addr, grpc_addr = sys.argv[1:4]
    token = sys.argv[4] if len(sys.argv) > 4 else ""
    try:
        res = asyncio.run(infer(kind, http_addr, grpc_addr, token))
    except Exception as exc:  # the status the SDK's error carries
        response = getattr(exc, "response", None)
        code = getattr(exc, "code", None)
        if response is not None:
            print(json.dumps({"status": str(response.status_code), "error": str(exc)}))
        elif callable(code):
            print(json.dumps({"status": str(code()), "error": str(exc)}))
        else:
            print(json.dumps({"status": "", "error": repr(exc)}))
        return
    print(json.dumps({"output": res.outputs[0].as_numpy().tolist()}))


if __name__ == "__main__":
    main()
