"""The broker the tests run against: a real Kafka when SLUICE_TEST_BROKERS
is set (scripts/kafka.sh), else the embedded broker of `sluice dev`, built
from this checkout and started on free loopback ports."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from sluice.kafkaauth import client_settings

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0
_READY = re.compile(r"^sluice dev: REST on \S+, gRPC on \S+ \(brokers \[([^\]]+)\]\)", re.M)


@contextmanager
def broker() -> Iterator[list[str]]:
    """Yields broker addresses until the context ends."""
    if env := os.environ.get("SLUICE_TEST_BROKERS"):
        yield env.split(",")
        return
    with tempfile.TemporaryDirectory(prefix="sluice-pytest-") as tmp:
        binary = os.environ.get("SLUICE_BIN") or _build(Path(tmp))
        log = Path(tmp) / "dev.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [binary, "dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--builtin=false", "--keep-consumed"],
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            yield _wait_ready(proc, log)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _build(tmp: Path) -> str:
    binary = tmp / "sluice"
    subprocess.run([os.environ.get("GO", "go"), "build", "-o", str(binary), "./cmd/sluice"], cwd=REPO, check=True)
    return str(binary)


def _wait_ready(proc: subprocess.Popen[bytes], log: Path) -> list[str]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if m := _READY.search(log.read_text()):
            return m.group(1).split()
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"sluice dev did not start; its log:\n{log.read_text()[-4000:]}")


def create_topics(brokers: list[str], names: list[str], partitions: int = 1) -> None:
    admin = AdminClient(client_settings(brokers))
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names], operation_timeout=10)
    for name, f in futures.items():
        try:
            f.result(15)
        except KafkaException as exc:
            raise RuntimeError(f"create topic {name}: {exc}") from exc
