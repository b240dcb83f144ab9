"""serve.run without brokers: what it pushes (the import path and the
directory found from the application object) and the handle's errors.
Deploying to a platform and calling through its gateway is tested end to
end (e2e TestPythonExamples: `python chain.py` against sluice dev and
against sluice node + sluice gateway)."""

from __future__ import annotations

import asyncio
import http.server
import importlib
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.protocol import SluiceError, Unavailable
from sluice.serve import remote
from sluice.serve.remote import Platform, RemoteHandle, _Route, import_path

MODULE = """
from sluice import serve


@serve.deployment
class Echo:
    def __call__(self, x):
        return x


app = Echo.bind()
inline = [Echo.bind()]
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "web.py").write_text(MODULE)
    (tmp_path / "echoapp.py").write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for m in ("echoapp", "shop", "shop.web"):
        sys.modules.pop(m, None)


def test_the_import_path_of_a_module_level_application(project: Path) -> None:
    mod = importlib.import_module("echoapp")
    assert import_path(mod.app) == ("echoapp:app", project)
    # A package's module: the directory pushed is the one its top package is in.
    web = importlib.import_module("shop.web")
    assert import_path(web.app) == ("shop.web:app", project)


def test_a_script_is_imported_by_its_file_name(project: Path) -> None:
    mod = importlib.import_module("echoapp")
    sys.modules["__main__saved"] = sys.modules["__main__"]
    try:
        mod.__name__ = "__main__"
        sys.modules["__main__"] = mod
        mod.Echo.target.__module__ = "__main__"
        assert import_path(mod.app) == ("echoapp:app", project)
    finally:
        sys.modules["__main__"] = sys.modules.pop("__main__saved")


def test_an_application_without_a_name_is_refused(project: Path) -> None:
    mod = importlib.import_module("echoapp")
    with pytest.raises(ValueError, match="not a module-level name"):
        import_path(mod.inline[0])


def test_a_platform_that_does_not_answer_is_unavailable() -> None:
    p = Platform("127.0.0.1:9")  # discard: nothing listens
    try:
        with pytest.raises(Unavailable):
            p.call("/x", 5)
    finally:
        p.stop()


def test_the_handle_carries_the_gateways_code() -> None:
    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"error":"no application serves /x","code":"not_found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        h = RemoteHandle(_Route(p, "/x"), "Echo")
        with pytest.raises(SluiceError) as exc:
            h.remote(5).result(timeout_s=10)
        assert (exc.value.code, exc.value.message) == ("not_found", "no application serves /x")
    finally:
        p.stop()
        srv.shutdown()


def test_an_https_platform_is_trusted_through_sluice_ca_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SLUICE_ADDR=https://... with SLUICE_CA_FILE, as the sluice command
    line takes it: the probe finds the platform (rather than starting a
    sluice dev of its own) and calls and streams go to it over TLS."""

    def openssl(args: str) -> None:
        subprocess.run(["openssl", *args.split()], cwd=tmp_path, check=True, capture_output=True)

    ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    openssl(f"req -x509 {ec} -days 1 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem")
    openssl(f"req {ec} -subj /CN=127.0.0.1 -keyout server-key.pem -out server.csr")
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile ext.cnf -out server.pem"
    )

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.reply(b'{"ready":true}')

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Accept") == "text/event-stream":
                self.reply(b"data: 7\n\n", "text/event-stream")
            else:
                self.reply(b"6")

        def reply(self, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem")
    srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{srv.server_address[1]}"
    monkeypatch.setenv("SLUICE_CA_FILE", str(tmp_path / "ca.pem"))
    p = Platform(url)
    try:
        assert remote._answers(url)
        assert p.call("/x", 5).value == b"6"
        assert list(p.stream("/x", 5)) == [7]
    finally:
        p.stop()
        srv.shutdown()


class _EchoGateway(http.server.BaseHTTPRequestHandler):
    """Answers a POST with its body, after the server's barrier (when it
    has one); counts the requests and the connections they came on."""

    protocol_version = "HTTP/1.1"  # kept alive

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv: Any = self.server
        with srv.lock:
            srv.requests += 1
            srv.peers.add(self.client_address)
        if srv.barrier is not None:
            srv.barrier.wait(10)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def _echo_gateway(barrier: threading.Barrier | None = None) -> Any:
    srv: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoGateway)
    srv.daemon_threads = True
    srv.lock, srv.requests, srv.peers, srv.barrier = threading.Lock(), 0, set(), barrier
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_a_call_is_sent_when_made() -> None:
    """remote() sends at once: three calls made before any result is
    asked for all reach the gateway, which answers none before the third
    arrives; result() then reads each answer."""
    srv = _echo_gateway(threading.Barrier(3))
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        h = RemoteHandle(_Route(p, "/x"), "Echo")
        calls = [h.remote(i) for i in range(3)]
        assert [c.result() for c in reversed(calls)] == [2, 1, 0]
        assert srv.requests == 3
    finally:
        p.stop()
        srv.shutdown()


async def test_a_call_through_the_gateway_is_awaited() -> None:
    srv = _echo_gateway()
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        h = RemoteHandle(_Route(p, "/x"), "Echo")
        assert await h.remote(7) == 7
        assert h.remote(8).result(timeout_s=10) == 8
    finally:
        p.stop()
        srv.shutdown()


def test_an_answer_nobody_reads_frees_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Responses dropped unread are read in the background: their calls
    reach the gateway, and their connections (at most CALLS_IN_FLIGHT
    at once) serve the calls after them."""
    monkeypatch.setattr(remote, "CALLS_IN_FLIGHT", 2)
    srv = _echo_gateway()
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        h = RemoteHandle(_Route(p, "/x"), "Echo")
        for i in range(10):
            h.remote(i)  # dropped at once
        assert h.remote(42).result(timeout_s=10) == 42
        deadline = time.monotonic() + 10
        while srv.requests < 11 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.requests == 11
        assert len(srv.peers) <= 2
    finally:
        p.stop()
        srv.shutdown()


class _Counting(http.server.BaseHTTPRequestHandler):
    """Counts the POSTs it reads. mode "drop": closes the connection after
    reading the first request, without answering (it may have run); mode
    "idle-close": answers, then closes each kept-alive connection a moment
    later, as a gateway's idle timeout does."""

    protocol_version = "HTTP/1.1"
    posts: list[bytes]
    mode: str

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append(body)
        if self.mode == "drop" and len(self.posts) == 1:
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if self.mode == "idle-close":
            self.close_connection = True

    def log_message(self, *_: object) -> None:
        pass


def _counting(mode: str) -> tuple[http.server.ThreadingHTTPServer, list[bytes]]:
    posts: list[bytes] = []
    handler = type("H", (_Counting,), {"posts": posts, "mode": mode})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, posts


def test_a_call_that_may_have_run_is_not_sent_again() -> None:
    """The connection is lost after the request was written: the call
    fails unavailable, and the gateway saw it once."""
    srv, posts = _counting("drop")
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        with pytest.raises(Unavailable, match="it may have run; not sent again"):
            p.call("/x", 5)
        assert posts == [b"5"]
    finally:
        p.stop()
        srv.shutdown()


def test_a_kept_alive_connection_closed_while_idle_is_replaced() -> None:
    """The gateway closed the idle connection: the next call goes on a new
    one, and each call reaches the gateway exactly once."""
    srv, posts = _counting("idle-close")
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        for i in (1, 2, 3):
            assert p.call("/x", i).value == str(i).encode()
            with p._lock:
                conn = p._idle[-1]
            deadline = time.monotonic() + 10
            while not remote._stale(conn):  # until the server's close arrived
                assert time.monotonic() < deadline, "the server did not close the connection"
                time.sleep(0.01)
        assert posts == [b"1", b"2", b"3"]
    finally:
        p.stop()
        srv.shutdown()


async def test_calls_over_the_limit_do_not_starve_the_answers_they_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """More calls than CALLS_IN_FLIGHT, held, then awaited: the calls that
    wait their turn must not take every thread that reads the answers of
    those in flight (which free the turns they wait for)."""
    monkeypatch.setattr(remote, "CALLS_IN_FLIGHT", 2)
    srv = _echo_gateway()
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        h = RemoteHandle(_Route(p, "/x"), "Echo")
        calls = [h.remote(i) for i in range(6)]
        assert await asyncio.wait_for(asyncio.gather(*calls), 10) == list(range(6))
    finally:
        p.stop()
        srv.shutdown()


class _HeldGateway(_EchoGateway):
    """Answers the first POST once the server's release is set, the
    others at once."""

    def do_POST(self) -> None:
        srv: Any = self.server
        with srv.lock:
            first = srv.requests == 0
        if first:
            srv.release.wait(10)
        super().do_POST()


def test_a_call_waiting_for_its_argument_holds_no_thread() -> None:
    """Calls whose argument is another call's response are sent once it
    settles, with no thread waiting for it meanwhile: twenty of them on
    one held call start no call thread, and each then gets its answer."""
    srv: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HeldGateway)
    srv.daemon_threads = True
    srv.lock, srv.requests, srv.peers, srv.barrier, srv.release = threading.Lock(), 0, set(), None, threading.Event()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    p = Platform(f"127.0.0.1:{srv.server_address[1]}")
    try:
        h = RemoteHandle(_Route(p, "/x"), "Echo")
        first = h.remote(41)
        chained = [h.remote(first) for _ in range(20)]
        time.sleep(0.2)
        waiting = [t.name for t in threading.enumerate() if t.name.startswith("sluice-remote_")]
        assert waiting == [], f"threads wait for the argument: {waiting}"
        srv.release.set()
        assert [c.result(timeout_s=10) for c in chained] == [41] * 20
        assert srv.requests == 21
    finally:
        srv.release.set()
        p.stop()
        srv.shutdown()
