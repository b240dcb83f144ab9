"""Topic and group names (docs/PROTOCOL.md, "Names"), as streams/namer.go
writes them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")


def check_segment(what: str, s: str) -> str:
    """s if it is a valid name segment: [A-Za-z0-9][A-Za-z0-9-]*, at most 63."""
    if not _SEGMENT.fullmatch(s):
        raise ValueError(f"{what} {s!r}: use letters, digits and '-', starting with a letter or digit, at most 63")
    return s


@dataclass(frozen=True)
class Namer:
    prefix: str = "sluice"

    def ingress(self, app: str) -> str:
        return f"{self.prefix}.app.{check_segment('app', app)}.in"

    def output(self, app: str) -> str:
        return f"{self.prefix}.app.{check_segment('app', app)}.out"

    def dead_letter(self, app: str) -> str:
        return f"{self.prefix}.app.{check_segment('app', app)}.dlq"

    def edge(self, app: str, src: str, dst: str) -> str:
        a, s, d = check_segment("app", app), check_segment("deployment", src), check_segment("deployment", dst)
        return f"{self.prefix}.app.{a}.edge.{s}.{d}"

    def group(self, app: str, deployment: str) -> str:
        return f"{self.prefix}.app.{check_segment('app', app)}.dep.{check_segment('deployment', deployment)}"

    def reply(self, instance: str) -> str:
        return f"{self.prefix}.reply.{check_segment('instance', instance)}"
