"""Open Inference Protocol (KServe v2 / Triton) requests and responses in
the compact payload they travel in between the gateway and a deployment
(gateway/oip's payload form): a 4-byte big-endian length N, N bytes of
the REST JSON form with each tensor's data given as binary_data_size,
then every tensor's raw data in tensor order. Raw data is the protocol's:
little-endian fixed-size elements in row-major order, or for BYTES each
element as a 4-byte little-endian length and its bytes.

A deployment the gateway sends OIP calls to (POST /v2/models/{app}/infer,
tritonclient HTTP or gRPC) is handed the payload as bytes, decodes it
with decode_request and answers with encode_response."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from sluice.protocol import InvalidArgument

CONTENT_TYPE = "application/vnd.sluice.oip"

ELEMENT_SIZE = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2,
                "INT32": 4, "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8}  # fmt: skip
"""Bytes per element of the fixed-size datatypes (BYTES is not)."""

NUMPY_DTYPE = {"BOOL": "|b1", "UINT8": "|u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "|i1",
               "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}  # fmt: skip
"""numpy's dtype string of each fixed-size datatype: np.frombuffer(t.data, NUMPY_DTYPE[t.datatype])."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: bytes
    parameters: dict[str, Any] = field(default_factory=dict)

    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass
class InferRequest:
    inputs: list[Tensor]
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # the outputs the caller asked for; empty: all

    def input(self, name: str) -> Tensor:
        """The input named name; InvalidArgument naming what there is when absent."""
        for t in self.inputs:
            if t.name == name:
                return t
        have = ", ".join(t.name for t in self.inputs) or "none"
        raise InvalidArgument(f"inference request: no input {name!r} (inputs: {have})")


def decode_request(payload: bytes) -> InferRequest:
    """The request in payload; InvalidArgument naming what is wrong."""
    if len(payload) < 4:
        raise InvalidArgument(f"inference payload of {len(payload)} bytes is shorter than its 4-byte header length")
    (n,) = struct.unpack_from(">I", payload)
    if n > len(payload) - 4:
        raise InvalidArgument(f"inference payload header length {n} beyond the {len(payload) - 4} bytes that follow it")
    try:
        head = json.loads(payload[4 : 4 + n])
    except ValueError as exc:
        raise InvalidArgument(f"inference payload header is not JSON: {exc}") from exc
    if not isinstance(head, dict) or not isinstance(head.get("inputs"), list):
        raise InvalidArgument("inference payload header has no inputs")
    off = 4 + n
    inputs = []
    for i, t in enumerate(head["inputs"]):
        params = dict(t.get("parameters") or {})
        size = params.pop("binary_data_size", None)
        if not isinstance(size, int) or size < 0 or off + size > len(payload):
            raise InvalidArgument(f"inference payload: input {i} has no binary_data_size within the payload")
        tensor = Tensor(str(t.get("name", "")), str(t.get("datatype", "")), [int(d) for d in t.get("shape", [])],
                        payload[off : off + size], params)  # fmt: skip
        _check(tensor, "input")
        inputs.append(tensor)
        off += size
    outputs = [str(o.get("name", "")) for o in head.get("outputs") or []]
    return InferRequest(inputs, str(head.get("id", "")), dict(head.get("parameters") or {}), outputs)


def _check(t: Tensor, role: str) -> None:
    size = ELEMENT_SIZE.get(t.datatype)
    if size is None and t.datatype != "BYTES":
        raise InvalidArgument(f"{role} {t.name}: datatype {t.datatype!r} is not one of the protocol's")
    if any(d < 0 for d in t.shape):
        raise InvalidArgument(f"{role} {t.name}: shape {t.shape} has a negative dimension")
    if size is not None and len(t.data) != t.elements() * size:
        raise InvalidArgument(
            f"{role} {t.name}: {len(t.data)} bytes of data for shape {t.shape} of {t.datatype} "
            f"(want {t.elements() * size})"
        )


def encode_response(outputs: list[Tensor], *, model_name: str, model_version: str = "", id: str = "",
                    parameters: dict[str, Any] | None = None) -> bytes:  # fmt: skip
    """The payload of a response with outputs (each checked against its
    shape and datatype)."""
    head: dict[str, Any] = {"model_name": model_name}
    if model_version:
        head["model_version"] = model_version
    head["id"] = id
    if parameters:
        head["parameters"] = parameters
    tensors = []
    for t in outputs:
        _check(t, "output")
        params: dict[str, Any] = {**t.parameters, "binary_data_size": len(t.data)}
        tensors.append({"name": t.name, "datatype": t.datatype, "shape": t.shape, "parameters": params})
    head["outputs"] = tensors
    js = json.dumps(head, separators=(",", ":")).encode()
    return b"".join([struct.pack(">I", len(js)), js, *(t.data for t in outputs)])
