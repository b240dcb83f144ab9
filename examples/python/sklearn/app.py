"""Scikit-learn classifiers from the model registry behind the Open
Inference Protocol, several models multiplexed on each replica.

A call names its model in the serve_multiplexed_model_id header
(tritonclient: headers={...}); the gateway sends it as sl-model, keyed by
it, so one model's calls reach the same replica. The replica loads a
model the first time it is asked for (fetched from the registry by id:
NAME, NAME@VERSION or NAME@ALIAS), keeps at most two, and answers OIP
tensors: input "input" FP32 [n, 4] in, "label" INT64 [n] and
"probabilities" FP32 [n, 3] out. Each response's parameters tell what
the replica did (loads, unloads, the models it holds), which the tests
read to see evictions.

    python train.py /tmp/iris
    sluice models push iris-logistic /tmp/iris/iris-logistic --format sklearn-joblib
    sluice deploy --python . --import-path app:app --name iris
    # POST /v2/models/iris/infer with serve_multiplexed_model_id: iris-logistic
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import joblib
import numpy as np
from sluice.protocol import FailedPrecondition, InvalidArgument
from sluice.serve import models, oip
from sluice.serve.multiplex import model_cache

from sluice import serve

FORMAT = "sklearn-joblib"


class Loaded:
    """One model version in memory."""

    def __init__(self, version: models.ModelVersion, estimator: Any, owner: Classifier) -> None:
        self.version = version
        self.estimator = estimator
        self._owner: Classifier | None = owner

    def __del__(self) -> None:  # called on eviction (and again by the collector)
        if self._owner is not None:
            self._owner.unloads += 1
            self._owner = None


class Classifier:
    def __init__(self) -> None:
        self.replica = uuid.uuid4().hex[:8]  # which replica answered, for the tests
        self.attempts = 0  # loads started, failed ones included
        self.loads = 0
        self.unloads = 0

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> Loaded:
        self.attempts += 1
        v = await models.fetch(model_id)
        if v.format != FORMAT:
            what = v.format or "of no format"
            raise FailedPrecondition(f"model {v.model} version {v.version} is {what}, not {FORMAT}")
        estimator = await asyncio.to_thread(joblib.load, v.path / "model.joblib")
        self.loads += 1
        return Loaded(v, estimator, self)

    async def __call__(self, payload: bytes) -> bytes:
        model_id = serve.get_multiplexed_model_id()
        if not isinstance(payload, bytes):
            raise InvalidArgument("call this deployment with the Open Inference Protocol: POST /v2/models/NAME/infer")
        req = oip.decode_request(payload)
        x = req.input("input")
        if x.datatype not in ("FP32", "FP64") or len(x.shape) != 2 or x.shape[1] != 4:
            raise InvalidArgument(f"input {x.name}: {x.datatype} {x.shape}, want FP32 [n, 4]")
        m = await self.get_model(model_id)
        features = np.frombuffer(x.data, oip.NUMPY_DTYPE[x.datatype]).reshape(x.shape).astype(np.float64)
        label = await asyncio.to_thread(m.estimator.predict, features)
        proba = await asyncio.to_thread(m.estimator.predict_proba, features)
        n = x.shape[0]
        outputs = [
            oip.Tensor("label", "INT64", [n], np.asarray(label, "<i8").tobytes()),
            oip.Tensor("probabilities", "FP32", [n, proba.shape[1]], np.asarray(proba, "<f4").tobytes()),
        ]
        cache = model_cache(self.get_model)
        held = ",".join(cache.loaded()) if cache is not None else ""
        said = {"model_id": model_id, "replica": self.replica, "attempts": self.attempts, "loads": self.loads,
                "unloads": self.unloads, "held": held}  # fmt: skip
        v = m.version
        return oip.encode_response(outputs, model_name=v.model, model_version=v.version, id=req.id, parameters=said)


app = serve.deployment(Classifier).bind()

# Two replicas: the gateway keys each call by its model id, so each model
# is served, and loaded, by one of them.
spread = serve.deployment(Classifier).options(num_replicas=2).bind()
