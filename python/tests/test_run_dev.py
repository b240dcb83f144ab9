"""serve.run when no platform answers at SLUICE_ADDR: it starts a local
`sluice dev` (SLUICE_BIN), deploys the application there, answers
through its gateway, and serve.shutdown stops that `sluice dev` with
every replica process it started; so does a `kill -9` of the process
that started it. Without a sluice binary to start, serve.run says what
to set."""

from __future__ import annotations

import importlib
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from broker import _build
from sluice import serve
from sluice.protocol import SluiceError
from sluice.serve import remote

APP = """
from sluice import serve


@serve.deployment
class Adder:
    def __init__(self, increment):
        self.increment = increment

    def __call__(self, value):
        return value + self.increment


@serve.deployment
class Multiplier:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, value):
        return value * self.factor


@serve.deployment
class Ingress:
    def __init__(self, adder, multiplier):
        self.adder = adder
        self.multiplier = multiplier

    async def __call__(self, value):
        return await self.multiplier.remote(self.adder.remote(value))


@serve.deployment
class Numbers:
    def __call__(self, n):
        for i in range(abs(n)):
            yield i
        if n < 0:
            raise ValueError(f"numbers failed after {-n} items")


app = Ingress.bind(Adder.bind(increment=1), Multiplier.bind(factor=2))
numbers = Numbers.bind()
"""


@pytest.fixture(scope="module")
def sluice_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("SLUICE_BIN") or _build(tmp_path_factory.mktemp("bin"))


@pytest.fixture
def localapp(tmp_path: Path) -> Iterator[ModuleType]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "localapp.py").write_text(textwrap.dedent(APP))
    (project / "requirements.txt").write_text("# nothing beyond the SDK\n")  # what makes it a python-project
    sys.path.insert(0, str(project))
    try:
        yield importlib.import_module("localapp")
    finally:
        remote.shutdown()
        sys.path.remove(str(project))
        sys.modules.pop("localapp", None)


def _free_addr() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _children() -> dict[int, int]:
    """Each live process's parent, by pid."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(d.name)] = int(fields[1])
    return parents


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, parent in parents.items() if parent == p}
        todo.extend(kids - found)
        found |= kids
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_serve_run_starts_a_local_sluice_dev_and_shutdown_stops_it(
    localapp: ModuleType, sluice_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addr = _free_addr()
    monkeypatch.setenv("SLUICE_ADDR", addr)
    monkeypatch.setenv("SLUICE_BIN", sluice_binary)
    monkeypatch.setenv("SLUICE_PYTHON_ENVS", str(tmp_path / "envs"))
    monkeypatch.delenv("SLUICE_TOKEN", raising=False)

    handle = serve.run(localapp.app)
    assert handle.remote(5).result() == 12
    p = remote._platform
    assert p is not None and p.proc is not None and p.log is not None
    assert p.addr != addr and p.proc.poll() is None, "the application runs on the sluice dev serve.run started"
    cmd = _cmdline(p.proc.pid).split()
    assert cmd[:2] == [sluice_binary, "dev"] and "--builtin=false" in cmd and "--stop-on-stdin-close" in cmd

    # A stream through the gateway: its items in order, and a failure
    # midway raised after the items before it.
    numbers = serve.run(localapp.numbers, name="numbers").options(stream=True)
    assert list(numbers.remote(4)) == [0, 1, 2, 3]
    got = []
    with pytest.raises(SluiceError) as failed:
        for i in numbers.remote(-3):
            got.append(i)
    assert got == [0, 1, 2]
    assert "ValueError: numbers failed after 3 items" in str(failed.value) and failed.value.code == "internal"
    assert remote._platform is p, "one sluice dev for the process"

    pids = _descendants(p.proc.pid)
    replicas = [pid for pid in pids if "sluice.replica" in _cmdline(pid)]
    assert len(replicas) >= 4, f"the Python replica processes of both applications: {[_cmdline(x) for x in pids]}"

    serve.shutdown()
    assert p.proc.returncode is not None, "serve.shutdown stopped sluice dev"
    alive = {pid: _cmdline(pid) for pid in pids if pid in _children()}
    assert not alive, f"processes of the sluice dev left after serve.shutdown: {alive}"
    assert not p.log.exists(), "the log of the sluice dev that stopped is removed"
    assert not remote._answers(p.addr)


def test_serve_run_without_a_platform_or_a_sluice_binary_says_what_to_set(
    localapp: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addr = _free_addr()
    monkeypatch.setenv("SLUICE_ADDR", addr)
    monkeypatch.delenv("SLUICE_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sluice on it
    with pytest.raises(FileNotFoundError) as nothing:
        serve.run(localapp.app)
    msg = str(nothing.value)
    assert addr in msg and "SLUICE_BIN" in msg and "PATH" in msg and "SLUICE_ADDR" in msg, msg
    assert remote._platform is None

    monkeypatch.setenv("SLUICE_BIN", str(tmp_path / "no-such-sluice"))
    with pytest.raises(FileNotFoundError, match=r"SLUICE_BIN=\S+no-such-sluice is not an executable file"):
        serve.run(localapp.app)
    assert remote._platform is None


DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
import time
import localapp
from sluice import serve
from sluice.serve import remote
assert serve.run(localapp.app).remote(5).result() == 12
print(remote._platform.proc.pid, remote._platform.log, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_the_sluice_dev_stops_when_the_process_that_started_it_is_killed(
    localapp: ModuleType, sluice_binary: str, tmp_path: Path
) -> None:
    env = {**os.environ, "SLUICE_ADDR": _free_addr(), "SLUICE_BIN": sluice_binary,
           "SLUICE_PYTHON_ENVS": str(tmp_path / "envs")}  # fmt: skip
    env.pop("SLUICE_TOKEN", None)
    assert localapp.__file__ is not None
    project = str(Path(localapp.__file__).parent)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, project], env=env, stdout=subprocess.PIPE)
    try:
        assert driver.stdout is not None
        ready, _, _ = select.select([driver.stdout], [], [], 180)
        line = driver.stdout.readline().decode().split() if ready else []
        assert len(line) == 2, f"the driver did not deploy within 180 s (exit {driver.poll()})"
        dev, log = int(line[0]), Path(line[1])
        pids = {dev, *_descendants(dev)}
        assert any("sluice.replica" in _cmdline(pid) for pid in pids), "the chain's Python replicas run"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pids & set(_children()):
            time.sleep(0.2)
        alive = {pid: _cmdline(pid) for pid in pids & set(_children())}
        assert not alive, f"processes of the sluice dev left 60 s after kill -9 of its starter: {alive}"
        assert "standard input closed: stopping" in log.read_text(), "stopped by the pipe closing"
        log.unlink()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
