"""serve.run(app) without brokers: the application deployed to a Sluice
platform as a python-project code bundle, as `sluice deploy --python DIR
--import-path MODULE:ATTR` does, and a handle whose calls go through the
platform's gateway (its REST route).

The platform is the one at SLUICE_ADDR (the gateway's HTTP address,
default 127.0.0.1:8000; SLUICE_TOKEN its bearer token when set). When
none answers there, a `sluice dev` is started for this process (the
binary at SLUICE_BIN, else `sluice` on PATH) and stopped at exit or
serve.shutdown. The bundle is the directory of the module that defines
the application: the module file of the deployment's class, with the
application as one of its module-level names (the import path the
platform's replicas import)."""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.protocol import SluiceError, Unavailable
from sluice.serve.auth import GatewayAccess
from sluice.serve.caller import Answer
from sluice.serve.codec import Args, call_value, decode, encode
from sluice.serve.deployment import Application
from sluice.serve.handle import DeploymentHandle, DeploymentResponse, has_responses, resolve_args

ADDR_ENV = "SLUICE_ADDR"
TOKEN_ENV = "SLUICE_TOKEN"
BIN_ENV = "SLUICE_BIN"
DEFAULT_ADDR = "127.0.0.1:8000"

PROBE_TIMEOUT_S = 2.0
"""How long the platform at SLUICE_ADDR has to answer its readiness."""

DEV_START_TIMEOUT_S = 120.0
"""How long a started `sluice dev` has to print its address."""

DEPLOY_TIMEOUT = "5m"
"""`sluice deploy --timeout`: the first deploy of a project builds its
Python environment (pip), later ones find it cached."""

CALLS_IN_FLIGHT = 64
"""Calls of one process's handles in flight at once, each on a kept-alive
connection to the gateway of its own; more wait their turn (in a pool of
as many threads)."""

CALL_TIMEOUT_S = 60.0
"""The HTTP timeout of one call through the gateway (its deadline is the
gateway's default unless the call sets one)."""


def import_path(app: Application) -> tuple[str, Path]:
    """MODULE:ATTR of app and the directory MODULE's file is in: the
    module that defines the ingress deployment's target, the module-level
    name whose value is app. A script run as __main__ is imported by its
    file's name."""
    target = app.deployment.target
    mod = sys.modules.get(getattr(target, "__module__", "") or "")
    file = getattr(mod, "__file__", None)
    if mod is None or not file:
        raise ValueError(f"serve.run: deployment {app.deployment.name} is not defined in a module file")
    names = [n for n, v in vars(mod).items() if v is app and not n.startswith("_")]
    if not names:
        raise ValueError(
            f"serve.run: the application is not a module-level name of {file}: assign it (app = ...bind()) so the "
            "platform's replicas can import it"
        )
    path = Path(file).resolve()
    name = path.stem if mod.__name__ == "__main__" else mod.__name__
    return f"{name}:{names[0]}", path.parents[name.count(".")]


def _binary() -> str:
    """The sluice binary: SLUICE_BIN when set (an executable file, or a
    command on PATH), else `sluice` on PATH."""
    if b := os.environ.get(BIN_ENV):
        if found := shutil.which(b):
            return found
        raise FileNotFoundError(f"serve.run: {BIN_ENV}={b} is not an executable file (set it to a sluice binary)")
    if b := shutil.which("sluice"):
        return b
    addr = os.environ.get(ADDR_ENV, DEFAULT_ADDR)
    raise FileNotFoundError(
        f"serve.run: no platform answers at {addr} ({ADDR_ENV}) and there is no sluice binary to start a local "
        f"`sluice dev` with: set {BIN_ENV} to one, put sluice on PATH, or set {ADDR_ENV} to a running platform"
    )


class Platform:
    """A Sluice platform this process deploys to: its REST base URL, and
    the `sluice dev` process when this process started it."""

    def __init__(self, addr: str, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
        self.addr = addr
        self.base = (addr if "://" in addr else "http://" + addr).rstrip("/")
        self.tls = _tls(self.base)
        self.proc = proc
        self.log = log
        self.pool = ThreadPoolExecutor(max_workers=CALLS_IN_FLIGHT, thread_name_prefix="sluice-remote")
        # The answers read in the background, in a pool of their own: the
        # calls waiting their turn in pool hold its threads until a call
        # in flight is read, so a read queued behind them would never run.
        # Each read holds a turn: at most CALLS_IN_FLIGHT wait at once.
        self.readers = ThreadPoolExecutor(max_workers=CALLS_IN_FLIGHT, thread_name_prefix="sluice-remote-read")
        self._slots = threading.BoundedSemaphore(CALLS_IN_FLIGHT)
        self._idle: list[http.client.HTTPConnection] = []  # kept-alive connections no call holds
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        token = os.environ.get(TOKEN_ENV, "")
        return {"Authorization": "Bearer " + token} if token else {}

    def deploy(self, app: Application, name: str, route_prefix: str) -> None:
        """Pushes the application's module directory as the next version
        of bundle name and deploys it, waiting for its replicas."""
        path, directory = import_path(app)
        cmd = [_binary(), "deploy", "--python", str(directory), "--import-path", path, "--name", name,
               "--route-prefix", route_prefix, "--timeout", DEPLOY_TIMEOUT, "--addr", self.addr]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"serve.run: {' '.join(cmd[1:])}: {(res.stderr or res.stdout).strip()}")

    def _conn(self) -> http.client.HTTPConnection:
        """A kept-alive connection to the gateway no call holds (one the
        gateway closed while it was idle is dropped), or a new one."""
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn = self._idle.pop()
            if not _stale(conn):
                return conn
            conn.close()
        return self._new_conn()

    def call(self, route: str, arg: Any) -> Answer:
        """POSTs arg to route; the answer, or the gateway's error as a
        SluiceError with its code (in this thread, start to end)."""
        with self._slots:
            return self.receive(self.send(route, arg))

    def start(self, route: str, arg: Any) -> RemoteCall:
        """Sends a call now, from this thread; its answer is read once by
        whoever asks first (see RemoteCall). With CALLS_IN_FLIGHT calls in
        flight it waits its turn in the pool instead."""
        c = RemoteCall(self)
        if not self._slots.acquire(blocking=False):
            _chain(self.pool.submit(self.call, route, arg), c.fut)
            c.claimed = True
            return c
        try:
            c.sent = self.send(route, arg)
        except BaseException as exc:
            self._slots.release()
            c.fut.set_exception(exc)
            c.claimed = True
        return c

    def send(self, route: str, arg: Any) -> _Sent:
        """Writes the POST of arg to route on a kept-alive connection."""
        body, content_type = encode(arg)
        hs = {"Content-Type": content_type, **self.headers()}
        sent = _Sent(self._conn(), urllib.parse.urlsplit(self.base).path + route, body, hs)
        try:
            sent.conn.request("POST", sent.path, body=body, headers=hs)
        except (http.client.HTTPException, OSError) as exc:
            sent.conn.close()
            if not isinstance(exc, _STALE):
                raise Unavailable(f"POST {self.base + route}: {exc}") from None
            sent.conn = self._new_conn()  # the gateway closed it while it was idle: once more
            try:
                sent.conn.request("POST", sent.path, body=body, headers=hs)
            except (http.client.HTTPException, OSError) as exc2:
                sent.conn.close()
                raise Unavailable(f"POST {self.base + route}: {exc2}") from None
            sent.retried = True
        return sent

    def receive(self, sent: _Sent) -> Answer:
        """Reads the answer of a call send wrote. A call is not idempotent:
        a connection lost once the request was written fails the call
        (unavailable), as the gateway may have run it; it is never sent
        again."""
        try:
            resp = sent.conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError) as exc:
            sent.conn.close()
            raise Unavailable(
                f"POST {self.base}{sent.path}: the connection was lost after the request was sent "
                f"(it may have run; not sent again): {exc}"
            ) from None
        if resp.will_close:
            sent.conn.close()
        else:
            with self._lock:
                self._idle.append(sent.conn)
        if resp.status >= 300:
            raise _error(resp.status, data)
        return Answer(data, resp.getheader("Content-Type", "") or "")

    def _new_conn(self) -> http.client.HTTPConnection:
        """A new connection, never an idle one (which may be stale too)."""
        u = urllib.parse.urlsplit(self.base)
        if u.scheme == "https":
            return http.client.HTTPSConnection(u.netloc, timeout=CALL_TIMEOUT_S, context=self.tls)
        return http.client.HTTPConnection(u.netloc, timeout=CALL_TIMEOUT_S)

    def stream(self, route: str, arg: Any) -> Iterator[Any]:
        """The items of a streamed answer, each as it comes, read as
        server-sent events: a failure after the first item is an event of
        its own (error), raised where the stream ends with it. A unary
        answer is one item."""
        body, content_type = encode(arg)
        req = urllib.request.Request(self.base + route, data=body, method="POST",
                                     headers={"Content-Type": content_type, "Accept": "text/event-stream",
                                              **self.headers()})  # fmt: skip
        try:
            resp = urllib.request.urlopen(req, timeout=CALL_TIMEOUT_S, context=self.tls)
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None
        except OSError as exc:
            raise Unavailable(f"POST {self.base + route}: {exc}") from None
        with resp:
            ctype = resp.headers.get("Content-Type", "") or ""
            if not ctype.startswith("text/event-stream"):
                yield decode(resp.read(), ctype)
                return
            try:
                for event, data in _events(resp):
                    if event == "error":
                        raise _error(200, data.encode())
                    yield json.loads(data)
            except (http.client.HTTPException, OSError) as exc:
                raise Unavailable(f"POST {self.base + route}: the stream was cut: {exc}") from None

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        # The reads queued still run (each bounded by CALL_TIMEOUT_S):
        # they settle their calls and free their connections.
        self.readers.shutdown(wait=False)
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()  # --stop-on-stdin-close: stopping too
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.log is not None:
            self.log.unlink(missing_ok=True)  # the log of a `sluice dev` that ran and stopped


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""A kept-alive connection the other end closed meanwhile."""


def _stale(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by the other end:
    its socket is readable (the end of the stream, or bytes nobody asked
    for) before a request is sent on it."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@dataclass
class _Sent:
    """A POST written on a connection, its answer not read yet."""

    conn: http.client.HTTPConnection
    path: str
    body: bytes
    headers: dict[str, str]
    retried: bool = False


class RemoteCall:
    """A call through the gateway, sent when made. Its answer is read
    once: by result() in the thread that waits for it (no hand-off to
    another thread and back), else by a pool thread (awaited, waited for
    with a timeout, or never asked for: the response was dropped)."""

    def __init__(self, platform: Platform) -> None:
        self.fut: Future[Answer] = Future()
        self.sent: _Sent | None = None
        self.claimed = False  # read, or being read
        self._p = platform
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            if self.claimed:
                return False
            self.claimed = True
            return True

    def read_here(self) -> None:
        if self._claim():
            self._read()

    def read_later(self) -> None:
        if self._claim():
            try:
                self._p.readers.submit(self._read)
            except RuntimeError:  # the pool was shut down: serve.shutdown
                self._settle(exc=Unavailable("the platform's handles were shut down"))

    def _read(self) -> None:
        assert self.sent is not None
        try:
            ans = self._p.receive(self.sent)
        except BaseException as exc:
            self._settle(exc=exc)
        else:
            self._settle(ans)
        finally:
            self._p._slots.release()

    def _settle(self, ans: Answer | None = None, exc: BaseException | None = None) -> None:
        if self.fut.done():
            return
        if exc is not None:
            self.fut.set_exception(exc)
        else:
            assert ans is not None
            self.fut.set_result(ans)


def _events(lines: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """The server-sent events of a response, as (event, data): the event
    named by its event field ("" for none), its data lines joined."""
    event = ""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def _error(status: int, body: bytes) -> SluiceError:
    try:
        doc = json.loads(body)
        return SluiceError(str(doc["error"]), str(doc["code"]))
    except (ValueError, KeyError, TypeError):
        return SluiceError(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")


def _tls(base: str) -> ssl.SSLContext | None:
    """The TLS of an https platform as the sluice command line has it
    (SLUICE_CA_FILE, the client certificate: sluice.serve.auth); None
    for http."""
    if not base.startswith("https://"):
        return None
    env = GatewayAccess.from_env({**os.environ, "SLUICE_ADDR": base})
    return env.ssl_context()


def _answers(base: str) -> bool:
    url = (base if "://" in base else "http://" + base).rstrip("/") + "/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S, context=_tls(url)) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


_REST_LINE = re.compile(rb"sluice dev: REST on http://([^,\s]+),")


def start_dev() -> Platform:
    """A `sluice dev` for this process, on ports the kernel picks, with
    none of the binary's own applications. It stops when this process
    ends, however it ends: its standard input is a pipe only this
    process holds, and it stops when the pipe closes."""
    binary = _binary()
    fd, name = tempfile.mkstemp(prefix="sluice-dev-", suffix=".log")
    os.close(fd)
    log = Path(name)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--builtin=false",
             "--stop-on-stdin-close"],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + DEV_START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if m := _REST_LINE.search(log.read_bytes()):
            return Platform(m.group(1).decode(), proc, log)
        time.sleep(0.2)
    Platform("", proc).stop()  # its log stays, for the message
    raise RuntimeError(f"serve.run: sluice dev did not start; its log {log}:\n{log.read_text()[-2000:]}")


_platform: Platform | None = None
_lock = threading.Lock()


def platform() -> Platform:
    """The platform at SLUICE_ADDR when it answers, else a `sluice dev`
    started once for this process."""
    global _platform
    with _lock:
        if _platform is None:
            addr = os.environ.get(ADDR_ENV, DEFAULT_ADDR)
            _platform = Platform(addr) if _answers(addr) else start_dev()
            atexit.register(shutdown)
        return _platform


def shutdown() -> None:
    """Stops the `sluice dev` this process started, if any."""
    global _platform
    with _lock:
        p, _platform = _platform, None
    if p is not None:
        p.stop()


@dataclass(frozen=True)
class _Route:
    platform: Platform
    route: str


class RemoteHandle(DeploymentHandle):
    """A handle to an application's ingress on a platform: each call is a
    POST to its route through the gateway."""

    def __init__(self, route: _Route, deployment: str, stream: bool = False) -> None:
        # Not a Kafka caller: the parent's state is not used.
        self._route = route
        self._stream = stream
        self.deployment_name = deployment

    def options(
        self, *, method_name: str | None = None, stream: bool | None = None, **unsupported: Any
    ) -> DeploymentHandle:
        """The same handle; stream=True: remote() yields the items of a
        streamed answer, each as it comes. A call through the gateway
        reaches the ingress's __call__ only."""
        for k in unsupported:
            raise TypeError(f"DeploymentHandle.options: {k} is not supported on a platform's handle")
        if method_name not in (None, "", "__call__"):
            raise ValueError(f"method_name {method_name!r}: a call through the gateway reaches __call__ only")
        return RemoteHandle(self._route, self.deployment_name, self._stream if stream is None else stream)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        r = self._route
        arg = call_value(args, kwargs)
        if self._stream:
            return r.platform.stream(r.route, arg)
        fut: Future[Answer] = Future()
        pending = isinstance(arg, DeploymentResponse) or (isinstance(arg, Args) and has_responses(arg))
        if pending:  # sent when its responses settle; no thread waits for them

            def upstream(value: Any, exc: BaseException | None) -> None:
                if exc is not None:
                    fut.set_exception(exc)
                    return
                _chain(r.platform.pool.submit(r.platform.call, r.route, value), fut)

            if isinstance(arg, DeploymentResponse):
                arg._then(upstream)
            else:
                resolve_args(arg, upstream)
            return DeploymentResponse(fut)
        call = r.platform.start(r.route, arg)
        resp = DeploymentResponse(call.fut, reader=call)
        # A response dropped unread: its answer is read (and the
        # connection freed) in the background.
        weakref.finalize(resp, call.read_later).atexit = False
        return resp


def _chain(src: Future[Answer], dst: Future[Answer]) -> None:
    def done(f: Future[Answer]) -> None:
        if f.cancelled():  # queued when the handles were shut down
            dst.set_exception(Unavailable("the platform's handles were shut down"))
        elif (exc := f.exception()) is not None:
            dst.set_exception(exc)
        else:
            dst.set_result(f.result())

    src.add_done_callback(done)


def run(app: Application, name: str, route_prefix: str | None = None) -> DeploymentHandle:
    """Deploys app to the platform (see the module's doc) as application
    name at route_prefix (default /NAME) and returns a handle to it."""
    p = platform()
    route = route_prefix or "/" + name
    p.deploy(app, name, route)
    return RemoteHandle(_Route(p, route), app.deployment.name)
