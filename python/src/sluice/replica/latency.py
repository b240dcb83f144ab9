"""The handler's recent run times, for a replica's report: as
replicas/latency.go, runs counted in the buckets of LATENCY_BUCKETS over
two adjacent periods of REPORT_EVERY_S, so a report's handler p99
covers the runs of the last five to ten seconds."""

from __future__ import annotations

import bisect
import threading

from sluice.replica.metrics import LATENCY_BUCKETS
from sluice.replica.report import REPORT_EVERY_S


class LatencyWindow:
    """Run times by bucket (the last +Inf) over the current period and
    the one before it. Thread-safe; times are time.monotonic()'s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start: float | None = None  # of the current period
        self._cur = [0] * (len(LATENCY_BUCKETS) + 1)
        self._prev = [0] * (len(LATENCY_BUCKETS) + 1)

    def observe(self, now: float, seconds: float) -> None:
        """Counts one run of seconds that ended at now."""
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            self._rotate(now)
            self._cur[i] += 1

    def _rotate(self, now: float) -> None:
        if self._start is None:
            self._start = now
            return
        age = now - self._start
        if age < REPORT_EVERY_S:
            return
        self._prev, self._cur = self._cur, [0] * len(self._cur)
        self._start += REPORT_EVERY_S  # periods stay adjacent
        if age >= 2 * REPORT_EVERY_S:
            self._prev = [0] * len(self._cur)
            self._start = now

    def p99(self, now: float) -> float:
        """The upper bound, in seconds, of the bucket that holds the 99th
        percentile of the runs in the window: 0 when there were none, -1
        when it lies past the last bound."""
        with self._lock:
            if self._start is None:
                return 0.0
            self._rotate(now)
            counts = [a + b for a, b in zip(self._cur, self._prev, strict=True)]
        total = sum(counts)
        if total == 0:
            return 0.0
        cum = 0
        for i, n in enumerate(counts):
            cum += n
            if cum >= 0.99 * total and i < len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[i]
        return -1.0
