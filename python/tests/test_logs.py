"""The replica process's log lines: JSON with SLUICE_LOG_FORMAT=json (the
keys and level names of the Go processes' slog), the served request's
ids on every line about it, the deployment's own included; text by
default."""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import copy_context
from pathlib import Path
from typing import Any

import pytest

from kafka_io import produce
from sluice.protocol import Record
from sluice.replica import logfmt
from sluice.serve.caller import ensure_topics

APP = """
import logging

from sluice import serve

log = logging.getLogger("scorer")


@serve.deployment
def Scorer(x):
    if x == "boom":
        raise RuntimeError("the model broke")
    log.info("scoring", extra={"input": x})
    return x


app = Scorer.bind()
"""

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@contextmanager
def replica(brokers: list[str], tmp_path: Path, uniq: Any, fmt_env: str | None,
            *flags: str) -> Iterator[tuple[str, queue.Queue[str]]]:  # fmt: skip
    """Runs `python -m sluice.replica` serving APP; yields its input topic
    and its stderr's lines as they come."""
    (tmp_path / "scorer.py").write_text(APP)
    topic, out, dlq = uniq("in"), uniq("out"), uniq("dlq")
    ensure_topics(brokers, [topic, out, dlq])
    env = {k: v for k, v in os.environ.items() if k != logfmt.FORMAT_ENV}
    if fmt_env is not None:
        env[logfmt.FORMAT_ENV] = fmt_env
    cmd = [sys.executable, "-m", "sluice.replica", "--brokers", ",".join(brokers), "--app", "logs",
           "--deployment", "Scorer", "--group", uniq("g"), "--topic", topic, "--output", out, "--dead-letter", dlq,
           "--instance", "Scorer-0", "--import-path", "scorer:app", "--app-dir", str(tmp_path),
           *flags]  # fmt: skip
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**env, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert p.stderr is not None
        for line in p.stderr:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        yield topic, lines
    finally:
        p.terminate()
        p.wait(timeout=30)


def send(brokers: list[str], topic: str, rid: str, value: str, traceparent: str = "") -> None:
    """A request nobody waits for (its failure is dead-lettered)."""
    hs = [("sl-id", rid.encode()), ("content-type", b"application/json")]
    if traceparent:
        hs.append(("traceparent", traceparent.encode()))
    produce(brokers, Record(topic, rid.encode(), json.dumps(value).encode(), hs))


def wait_line(lines: queue.Queue[str], seen: list[str], want: Any, timeout_s: float = 60.0) -> str:
    """The first line (of seen, then of lines) want accepts."""
    for line in seen:
        if want(line):
            return line
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        seen.append(line)
        if want(line):
            return line
    raise AssertionError("no such line in:\n" + "\n".join(seen[-40:]))


def json_lines(seen: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in seen if line.startswith("{")]


def test_json_lines_carry_the_request_ids(brokers: list[str], tmp_path: Path, uniq: Any) -> None:
    with replica(brokers, tmp_path, uniq, "json") as (topic, lines):
        seen: list[str] = []
        send(brokers, topic, "rq-boom", "boom", f"00-{TRACE_ID}-00f067aa0ba902b7-01")
        send(brokers, topic, "rq-ok", "fine")
        wait_line(lines, seen, lambda line: '"scoring"' in line)
        wait_line(lines, seen, lambda line: '"record dead-lettered"' in line)
    # Every line the process wrote is one JSON object.
    assert seen and all(line.startswith("{") for line in seen), [x for x in seen if not x.startswith("{")]
    got = json_lines(seen)
    raised = [x for x in got if x["msg"] == "deployment raised"]
    assert len(raised) == 1, got
    r = raised[0]
    assert r["level"] == "ERROR"
    assert (r["request_id"], r["trace_id"], r["deployment"], r["app"]) == ("rq-boom", TRACE_ID, "Scorer", "logs")
    assert "RuntimeError: the model broke" in r["traceback"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)", r["time"]), r["time"]
    assert list(r)[:3] == ["time", "level", "msg"]
    dead = next(x for x in got if x["msg"] == "record dead-lettered")
    assert (dead["level"], dead["request_id"], dead["trace_id"], dead["code"]) == ("WARN", "rq-boom", TRACE_ID,
                                                                                 "internal")  # fmt: skip
    # The deployment's own line, logged while it served a request without
    # a traceparent.
    user = next(x for x in got if x["msg"] == "scoring")
    assert (user["level"], user["logger"], user["input"]) == ("INFO", "scorer", "fine")
    assert (user["request_id"], user["trace_id"], user["instance"]) == ("rq-ok", "", "Scorer-0")
    # Lines about no request carry no ids.
    running = next(x for x in got if x["msg"] == "replica running")
    assert "request_id" not in running and running["level"] == "INFO"


def test_the_flag_sets_the_format_and_text_is_the_default(brokers: list[str], tmp_path: Path, uniq: Any) -> None:
    with replica(brokers, tmp_path, uniq, None, "--log-format", "json") as (_, lines):
        line = wait_line(lines, [], lambda line: "replica running" in line)
        assert json.loads(line)["msg"] == "replica running"
    with replica(brokers, tmp_path, uniq, None) as (topic, lines):
        seen: list[str] = []
        send(brokers, topic, "rq-text", "boom")
        line = wait_line(lines, seen, lambda line: "deployment raised" in line)
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR sluice\.replica\.logs\.Scorer deployment raised$", line
    )
    assert not any(x.startswith("{") for x in seen)


def test_a_bad_format_is_named() -> None:
    cmd = [sys.executable, "-m", "sluice.replica", "--brokers", "127.0.0.1:1", "--app", "a", "--deployment", "D",
           "--group", "g", "--topic", "t", "--output", "o", "--dead-letter", "d", "--instance", "D-0",
           "--import-path", "nowhere:app", "--log-format", "xml"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--log-format 'xml': want text or json" in p.stderr, p.stderr
    with pytest.raises(ValueError, match="SLUICE_LOG_FORMAT 'yaml': want text or json"):
        logfmt.format_of("", {logfmt.FORMAT_ENV: "yaml"})
    with pytest.raises(ValueError, match="--log-format 'xml'"):
        logfmt.format_of("xml", {})
    assert logfmt.format_of("", {}) == "text"
    assert logfmt.format_of("text", {logfmt.FORMAT_ENV: "json"}) == "text"


def test_the_json_formatter() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logfmt.configure("json", {"deployment": "D"}, stream=out)

        def served() -> None:
            logfmt.set_request("rq-1", TRACE_ID)
            logging.getLogger("user.code").warning("careful %s", "now", extra={"n": 2})
            try:
                raise ValueError("bad")
            except ValueError:
                logging.getLogger("sluice.x").exception("failed")

        copy_context().run(served)
        logging.getLogger("sluice.x").critical("outside", extra={"deployment": "E"})
    finally:
        root.handlers[:], root.level = saved
    warn, exc, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert warn["level"] == "WARN" and warn["msg"] == "careful now" and warn["n"] == 2
    assert (warn["request_id"], warn["trace_id"], warn["deployment"], warn["logger"]) == ("rq-1", TRACE_ID, "D",
                                                                                          "user.code")  # fmt: skip
    assert exc["level"] == "ERROR" and "ValueError: bad" in exc["exc"] and "logger" not in exc
    assert outside["level"] == "ERROR+4" and outside["deployment"] == "E" and "request_id" not in outside
