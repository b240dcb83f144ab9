"""Model versions from the platform's registry, for a deployment's model
loader: `await models.fetch("iris-a")` (or "iris-a@2", "iris-a@prod")
returns the version's directory, its files checked against the
registry's sizes and SHA-256s. It runs `sluice models fetch`, which
follows the registry's events from the brokers and reads the store the
platform's replicas read weights from; the platform starts a Python
replica with what that needs in its environment (SLUICE_BIN,
SLUICE_BROKERS, SLUICE_PREFIX, SLUICE_MODEL_CACHE, and SLUICE_BLOB_DIR
or SLUICE_S3_*), and a process of one's own sets the same. A version is
fetched once per cache directory; later fetches only resolve it."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.protocol import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    SluiceError,
    Unavailable,
)

FETCH_TIMEOUT_S = 120.0
"""Bound on one fetch: following the registry and downloading."""


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    format: str
    path: Path  # the version's files, as pushed


_cache: list[str] = []  # a process's own cache directory when the platform gives none, removed at exit


def _cache_dir(env: Mapping[str, str]) -> str:
    if d := env.get("SLUICE_MODEL_CACHE"):
        return d
    if not _cache:
        d = tempfile.mkdtemp(prefix="sluice-models-")
        _cache.append(d)
        atexit.register(shutil.rmtree, d, True)
    return _cache[0]


def fetch_command(ref: str, env: Mapping[str, str]) -> list[str]:
    """The `sluice models fetch` command line for ref under env."""
    binary = env.get("SLUICE_BIN") or shutil.which("sluice")
    if not binary:
        raise FailedPrecondition("no sluice binary to fetch models with: set SLUICE_BIN (the platform sets it)")
    if not env.get("SLUICE_BROKERS"):
        raise FailedPrecondition("no brokers to find the model registry on: set SLUICE_BROKERS (the platform sets it)")
    cmd = [binary, "models", "fetch", ref, "--cache", _cache_dir(env)]
    if p := env.get("SLUICE_PREFIX"):
        cmd += ["--prefix", p]
    if env.get("SLUICE_S3_ENDPOINT"):
        for flag, var in (("--s3-bucket", "SLUICE_S3_BUCKET"), ("--s3-prefix", "SLUICE_S3_PREFIX")):
            if v := env.get(var):
                cmd += [flag, v]
        if env.get("SLUICE_S3_TLS") == "true":
            cmd.append("--s3-tls")
    elif d := env.get("SLUICE_BLOB_DIR"):
        cmd += ["--blob-dir", d]
    return cmd


async def fetch(ref: str, *, timeout_s: float = FETCH_TIMEOUT_S) -> ModelVersion:
    """The files of ref (NAME, NAME@NUMBER, NAME@ALIAS; NAME alone is the
    highest version). Raises the registry's error with its code: not_found
    for an unknown model or version."""
    ans = await _run(ref, fetch_command(ref, os.environ), timeout_s)
    return ModelVersion(ans["model"], ans["version"], ans.get("format", ""), Path(ans["dir"]))


@dataclass(frozen=True)
class Versions:
    model: str
    versions: list[tuple[str, str]]  # (version, format), ascending
    aliases: dict[str, str]  # alias: version


async def versions(name: str, *, timeout_s: float = FETCH_TIMEOUT_S) -> Versions:
    """The versions and aliases the registry has of model name now;
    not_found when it has no such model."""
    cmd = [*fetch_command(name, os.environ), "--versions"]
    ans = await _run(name, cmd, timeout_s)
    listed = [(str(v["version"]), str(v.get("format", ""))) for v in ans.get("versions", [])]
    return Versions(ans["model"], listed, dict(ans.get("aliases") or {}))


async def _run(ref: str, cmd: list[str], timeout_s: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s + 5)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    line = out.decode(errors="replace").strip().splitlines()[-1:] or [""]
    try:
        ans = json.loads(line[0])
    except ValueError:
        ans = {"code": "internal", "error": err.decode(errors="replace").strip() or f"exit status {proc.returncode}"}
    if proc.returncode != 0 or "error" in ans:
        raise _error(str(ans.get("code", "internal")), f"model {ref}: {ans.get('error', '')}")
    return dict(ans)


_ERRORS: dict[str, type[SluiceError]] = {
    c.code: c for c in (NotFound, InvalidArgument, FailedPrecondition, Unavailable, DeadlineExceeded, Internal)
}


def _error(code: str, message: str) -> SluiceError:
    """The exception class of code (NotFound for not_found, ...)."""
    cls = _ERRORS.get(code)
    return cls(message) if cls is not None else SluiceError(message, code)
