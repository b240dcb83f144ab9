"""The replica process's log lines: text (the default) or, with
SLUICE_LOG_FORMAT=json (or --log-format json), one JSON object a line
with the keys and level names of the Go processes' slog JSON handler:
time (RFC 3339, milliseconds), level (DEBUG, INFO, WARN, ERROR), msg,
then the process's own attributes and the line's (a call's extra).

A line logged while a record is served, by the replica or by the
deployment's code through logging, carries the record's request_id and
trace_id (of its traceparent; "" without one): serving sets them in a
context variable (set_request), which a filter on the process's handler
reads."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, TextIO

FORMAT_ENV = "SLUICE_LOG_FORMAT"
"""platform/cli: the log format the platform's processes share."""

FORMATS = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_ids: ContextVar[tuple[str, str] | None] = ContextVar("sluice_log_ids", default=None)

# What every LogRecord has: the rest of its attributes came in extra.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def set_request(request_id: str, trace_id: str) -> None:
    """Makes the lines logged in this context carry the request's ids."""
    _ids.set((request_id, trace_id))


def ids() -> dict[str, str]:
    """The ids of the request being served, as a log call's extra; empty
    outside one."""
    got = _ids.get()
    return {} if got is None else {"request_id": got[0], "trace_id": got[1]}


def format_of(flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The format the flag names, else the environment's, else text; a
    ValueError names one that is neither text nor json."""
    f = flag if flag else environ.get(FORMAT_ENV, "")
    f = f or "text"
    if f not in FORMATS:
        src = "--log-format" if flag else FORMAT_ENV
        raise ValueError(f"{src} {f!r}: want text or json")
    return f


class RequestIds(logging.Filter):
    """Adds the served request's ids to a line that has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        got = _ids.get()
        if got is not None and not hasattr(record, "request_id"):
            record.request_id, record.trace_id = got
        return True


def level_name(levelno: int) -> str:
    """slog's name for a level: WARNING is WARN; CRITICAL, four above
    ERROR as slog counts, ERROR+4."""
    if levelno >= logging.CRITICAL:
        return "ERROR+4"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, msg, the process's attributes
    (attrs), then the line's own (which win over attrs of the same name),
    logger (when not the replica's own) and exc (a logged exception's
    traceback)."""

    def __init__(self, attrs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.attrs = dict(attrs or {})

    def format(self, record: logging.LogRecord) -> str:
        t = datetime.fromtimestamp(record.created, timezone.utc).astimezone()
        stamp = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out: dict[str, Any] = {"time": stamp, "level": level_name(record.levelno), "msg": record.getMessage()}
        out.update(self.attrs)
        for k, v in record.__dict__.items():
            if k not in _STANDARD and k not in ("time", "level", "msg"):
                out[k] = v
        if not record.name.startswith("sluice."):
            out.setdefault("logger", record.name)
        if record.exc_info:
            out["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(fmt: str, attrs: Mapping[str, Any] | None = None, level: int = logging.INFO,
              stream: TextIO | None = None) -> logging.Handler:  # fmt: skip
    """Sends the process's log lines (the root logger's) to stream
    (stderr) in fmt, with the served request's ids; the handler."""
    h = logging.StreamHandler(stream if stream is not None else sys.stderr)
    h.setFormatter(JSONFormatter(attrs) if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    h.addFilter(RequestIds())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(h)
    root.setLevel(level)
    return h
