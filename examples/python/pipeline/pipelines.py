"""Model pipelines: an abstract Pipeline (infer on the model, then
post_process its outputs into the answer) and the concrete pipelines,
by the registry model name each serves. A new version of a model is
served by its model name's pipeline, loaded from the registry."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from sluice.protocol import FailedPrecondition, InvalidArgument
from sluice.serve.models import ModelVersion


class Pipeline(ABC):
    """One version of a model and what is done around it."""

    def __init__(self, version: ModelVersion) -> None:
        self.version = version

    @abstractmethod
    def infer(self, inputs: list[list[float]]) -> list[list[float]]:
        """The model's outputs for a batch of inputs."""

    @abstractmethod
    def post_process(self, outputs: list[list[float]]) -> list[Any]:
        """The answer for each output."""

    def __call__(self, inputs: list[list[float]]) -> list[Any]:
        return self.post_process(self.infer(inputs))


class LinearPipeline(Pipeline):
    """A pipeline over a sluice-linear model (model.json: weights, in by out, and
    bias): y = xW + b."""

    def __init__(self, version: ModelVersion) -> None:
        super().__init__(version)
        if version.format != "sluice-linear":
            raise FailedPrecondition(
                f"model {version.model} version {version.version} is {version.format!r}, not sluice-linear"
            )
        spec = json.loads((version.path / "model.json").read_text())
        self.weights: list[list[float]] = spec["weights"]
        self.bias: list[float] = spec["bias"]

    def infer(self, inputs: list[list[float]]) -> list[list[float]]:
        n = len(self.weights)
        for i, row in enumerate(inputs):
            if len(row) != n:
                raise InvalidArgument(f"input {i} has {len(row)} values, model {self.version.model} takes {n}")
        return [
            [sum(x * self.weights[k][j] for k, x in enumerate(row)) + b for j, b in enumerate(self.bias)]
            for row in inputs
        ]


class Line(LinearPipeline):
    """Model "line": the value of the line at each x."""

    def post_process(self, outputs: list[list[float]]) -> list[Any]:
        return [{"y": round(o[0], 6)} for o in outputs]


class Grade(LinearPipeline):
    """Model "grade": a score out of 100 and whether it passes."""

    def post_process(self, outputs: list[list[float]]) -> list[Any]:
        return [{"score": round(o[0], 2), "passed": o[0] >= 50} for o in outputs]


PIPELINES: dict[str, type[Pipeline]] = {"line": Line, "grade": Grade}
"""The pipelines, by the model name they serve."""
