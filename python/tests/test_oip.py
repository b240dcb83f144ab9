"""The OIP payload a deployment is handed and answers with (gateway/oip's
payload form), and the command line a model loader fetches with."""

from __future__ import annotations

import json
import struct

import pytest

from sluice.protocol import SluiceError
from sluice.serve import oip
from sluice.serve.models import fetch_command


def payload(head: dict[str, object], *data: bytes) -> bytes:
    js = json.dumps(head).encode()
    return struct.pack(">I", len(js)) + js + b"".join(data)


def test_a_request_decodes_with_its_tensors_in_order() -> None:
    x = struct.pack("<4f", 1, 2, 3, 4)
    names = struct.pack("<I", 2) + b"ab"
    req = oip.decode_request(
        payload(
            {"id": "r1", "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
                {"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(names)}},
            ], "outputs": [{"name": "y"}]},
            x, names,
        )
    )  # fmt: skip
    assert req.id == "r1" and req.outputs == ["y"]
    assert req.input("x").data == x and req.input("x").shape == [1, 4] and req.input("s").data == names
    with pytest.raises(SluiceError) as exc:
        req.input("z")
    assert exc.value.code == "invalid_argument" and "no input 'z' (inputs: x, s)" in exc.value.message


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\x00\x00", "shorter than its 4-byte header length"),
        (b"\x00\x00\x00\x09{}", "header length 9 beyond the 2 bytes"),
        (b"\x00\x00\x00\x01x", "not JSON"),
        (payload({"outputs": []}), "has no inputs"),
        (payload({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2]}]}), "input 0 has no binary_data_size"),
        (payload({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]}),
         "input 0 has no binary_data_size within"),
        (payload({"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 8}}]},
                 b"\x00" * 8), "8 bytes of data for shape [3] of FP32 (want 12)"),
        (payload({"inputs": [{"name": "x", "datatype": "FP80", "shape": [1], "parameters": {"binary_data_size": 0}}]}),
         "datatype 'FP80' is not one of the protocol's"),
    ],
)  # fmt: skip
def test_bad_payloads_are_invalid_argument(raw: bytes, says: str) -> None:
    with pytest.raises(SluiceError) as exc:
        oip.decode_request(raw)
    assert exc.value.code == "invalid_argument" and says in exc.value.message


def test_a_response_encodes_header_then_data() -> None:
    y = struct.pack("<2q", 1, 2)
    out = oip.encode_response([oip.Tensor("y", "INT64", [2], y)], model_name="m", model_version="3", id="r1",
                              parameters={"loads": 1})  # fmt: skip
    (n,) = struct.unpack_from(">I", out)
    head = json.loads(out[4 : 4 + n])
    assert head == {"model_name": "m", "model_version": "3", "id": "r1", "parameters": {"loads": 1},
                    "outputs": [{"name": "y", "datatype": "INT64", "shape": [2],
                                 "parameters": {"binary_data_size": 16}}]}  # fmt: skip
    assert out[4 + n :] == y
    with pytest.raises(SluiceError, match="want 24"):
        oip.encode_response([oip.Tensor("y", "INT64", [3], y)], model_name="m")


def test_the_fetch_command_takes_the_platforms_environment() -> None:
    base = {"SLUICE_BIN": "/bin/sluice", "SLUICE_BROKERS": "b:9092", "SLUICE_PREFIX": "p", "SLUICE_MODEL_CACHE": "/c"}
    assert fetch_command("m@2", {**base, "SLUICE_BLOB_DIR": "/blobs"}) == [
        "/bin/sluice", "models", "fetch", "m@2", "--cache", "/c", "--prefix", "p", "--blob-dir", "/blobs"]  # fmt: skip
    s3 = {**base, "SLUICE_S3_ENDPOINT": "s3:9000", "SLUICE_S3_BUCKET": "w", "SLUICE_S3_TLS": "true"}
    s3["SLUICE_BLOB_DIR"] = "x"
    assert fetch_command("m", s3)[6:] == ["--prefix", "p", "--s3-bucket", "w", "--s3-tls"], "S3 wins over a directory"
    with pytest.raises(SluiceError, match="SLUICE_BROKERS") as exc:
        fetch_command("m", {"SLUICE_BIN": "/bin/sluice"})
    assert exc.value.code == "failed_precondition"
