"""A replica report's handler p99: the bucket bound of the 99th
percentile of the handler's runs over the last five to ten seconds."""

from __future__ import annotations

import json

from sluice.replica.latency import LatencyWindow
from sluice.replica.report import REPORT_EVERY_S, Report


def test_window_p99_and_its_age() -> None:
    w = LatencyWindow()
    assert w.p99(100.0) == 0.0
    for _ in range(98):
        w.observe(100.0, 0.003)
    w.observe(100.0, 0.040)
    w.observe(100.0, 0.045)
    assert w.p99(100.0) == 0.05
    assert w.p99(100.0 + REPORT_EVERY_S + 1) == 0.05  # the previous period: still counted
    assert w.p99(100.0 + 2 * REPORT_EVERY_S + 1) == 0.0  # gone


def test_window_past_the_last_bound() -> None:
    w = LatencyWindow()
    for _ in range(50):
        w.observe(7.0, 0.0004)
    assert w.p99(7.0) == 0.0005
    for _ in range(3):
        w.observe(8.0, 60.0)
    assert w.p99(8.0) == -1.0


def test_periods_stay_adjacent() -> None:
    w = LatencyWindow()
    w.observe(0.0, 1.0)
    w.observe(4.9, 2.0)
    assert w.p99(9.9) == 2.5
    assert w.p99(10.1) == 0.0


def test_report_json_omits_a_zero_p99() -> None:
    r = Report(app="a", deployment="D", instance="i", revision="r", generation=1, ready=True, partitions=1,
               processed=0, failed=0, expired=0, dead_lettered=0, ongoing=0, started="s", at="t")  # fmt: skip
    assert "handler_p99_seconds" not in json.loads(r.json())
    r.handler_p99_seconds = 0.025
    assert json.loads(r.json())["handler_p99_seconds"] == 0.025
