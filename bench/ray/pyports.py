"""The Python ports of Ray Serve's composition examples on Sluice and on
Ray Serve, the same code (examples/python/hello.py and chain.py; for Ray
a copy whose imports name ray), in the same run on this machine.

  hello  over HTTP: sluice-load POSTs {"language":"spanish","name":"x"}
         to /py/hello (the ingress reads the request's JSON, calls the
         Spanish greeter's method through a handle), answer "Hola x"
  chain  through the Python handle, as chain.py's driver does:
         handle = serve.run(app); handle.remote(5).result() == 12
         (Ingress -> Adder(1), the unresolved response to Multiplier(2)),
         by bench/ray/handle_load.py's threads

Both closed loops at c = 1, 16, 64. Sluice: `bin/sluice dev` (embedded
broker), the examples deployed with
`sluice deploy --python examples/python`; chain's driver runs in the
Python environment the platform prepared for them. Ray: `ray start
--head --num-cpus 16` (a scheduling figure: every replica of the
unchanged code reserves one CPU), Serve's proxy on a free port, the
applications deployed by serve.run; chain's driver is a Ray driver on
that cluster. Deployment options are the code's: Ray's defaults on both
(one replica, max_ongoing_requests 5).

Then, on the same broker, the floor each port's Kafka hops set:
python/bench/hops.py sends requests along the same route (hello: ingress,
greeter: 3 hops; chain: ingress, adder, multiplier: 4; each ingress
returns its call's answer, so the last deployment answers the gateway)
through echo processes written directly on confluent-kafka, with no
Sluice code, and the last lines say how much of 10x Ray's c = 1
throughput those hops alone leave room for (at c = 1 a closed loop's
throughput is one over its mean latency).

Run by `scripts/bench.sh pyports` with the Ray virtualenv's Python.
Environment: BENCH_DURATION (seconds per point, default 5), BENCH_WARMUP
(default 2), BENCH_CONCURRENCY (default "1 16 64"). Prints a table and
the ratios (Sluice's throughput over Ray's, Ray's p50 over Sluice's) and
the load average before and after.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin"
EXAMPLES = ROOT / "examples" / "python"
HELLO_BODY = '{"language":"spanish","name":"x"}'


def log(msg: str) -> None:
    print(f"[pyports {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, body: str | None, want: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=body.encode() if body is not None else None)
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5) as r:
                got = r.read().decode()
                if want in got:
                    return
                last = got[:200]
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s: {last}")


def replica_python(parent: int, app: str) -> str:
    """The interpreter of a replica of app that the process parent runs:
    that of the environment the platform prepared for examples/python
    with the SDK this binary embeds (the code cache may hold others)."""
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            ppid = int(Path(stat).read_text().rsplit(")", 1)[1].split()[1])
            argv = Path(stat).with_name("cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"sluice.replica" in argv and app.encode() in argv:
            return argv[0].decode()
    raise RuntimeError(f"no replica of {app} under process {parent}")


def load_http(url: str, body: str, expect: str, conc: int, duration: float, warmup: float) -> dict:
    cmd = [str(BIN / "sluice-load"), "-url", url, "-body", body, "-expect", expect, "-c", str(conc),
           "-duration", f"{duration}s", "-warmup", f"{warmup}s", "-json", "-fail-on-error=false"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"failed": f"sluice-load exit {r.returncode}: {r.stderr.strip()[-300:]}"}
    res = json.loads(lines[-1])
    res["c"] = conc
    return res


def load_handle(python: str, module_dir: Path, concs: list[int], duration: float, warmup: float,
                env: dict[str, str], ray_address: str = "") -> list[dict]:
    cmd = [python, str(ROOT / "bench/ray/handle_load.py"), "--module-dir", str(module_dir),
           "--c", ",".join(map(str, concs)), "--duration", str(duration), "--warmup", str(warmup)]
    if ray_address:
        cmd += ["--ray", ray_address]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=len(concs) * (duration + warmup + 60) + 300)
    out = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    if len(out) != len(concs):
        raise RuntimeError(f"handle_load exit {r.returncode}: {r.stderr.strip()[-1500:]}")
    return out


def stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_sluice(concs: list[int], duration: float, warmup: float, work: Path) -> dict:
    port, grpc = free_port(), free_port()
    addr = f"127.0.0.1:{port}"
    logf = open(work / "sluice.log", "wb")
    proc = subprocess.Popen([str(BIN / "sluice"), "dev", "--http", addr, "--grpc", f"127.0.0.1:{grpc}",
                             "--builtin=false"],
                            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://{addr}/v2/health/ready", None, "", 120)
        for ex in ("hello", "chain"):
            log(f"sluice deploy --python examples/python --import-path {ex}:app")
            r = subprocess.run([str(BIN / "sluice"), "deploy", "--python", str(EXAMPLES), "--import-path",
                                f"{ex}:app", "--name", f"py-{ex}", "--route-prefix", f"/py/{ex}", "--addr", addr],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"sluice deploy {ex}: exit {r.returncode}: {(r.stderr or r.stdout)[-1500:]}")
        wait_http(f"http://{addr}/py/hello", HELLO_BODY, "Hola x", 60)
        hello = [load_http(f"http://{addr}/py/hello", HELLO_BODY, "Hola x", c, duration, warmup) for c in concs]
        py = replica_python(proc.pid, "py-chain")
        env = dict(os.environ, SLUICE_ADDR=addr, SLUICE_BIN=str(BIN / "sluice"))
        chain = load_handle(py, EXAMPLES, concs, duration, warmup, env)
        log("python/bench/hops.py: the same routes as raw confluent-kafka hops on the same broker")
        return {"hello": hello, "chain": chain, "hops": raw_hops(py, work / "sluice.log")}
    finally:
        stop_group(proc)
        logf.close()


# The deployments each request visits, in order. hello's ingress returns
# what its greeter answers, chain's what its multiplier answers, so each
# hands its call over (sluice.serve.tail) and the last deployment answers
# the gateway: hello 3 hops, chain (the adder's answer forwarded to the
# multiplier) 4.
ROUTES = {"hello": "ingress,greeter", "chain": "ingress,adder,multiplier"}


def raw_hops(python: str, sluice_log: Path) -> dict[str, dict]:
    """Each port's route as raw confluent-kafka hops (python/bench/hops.py)
    on the broker of the `sluice dev` that logged to sluice_log."""
    m = re.search(r"\(brokers \[([^\]]+)\]\)", sluice_log.read_text(errors="replace"))
    if m is None:
        raise RuntimeError(f"{sluice_log}: no broker address logged")
    cmd = [python, str(ROOT / "python/bench/hops.py"), "--brokers", m.group(1).split()[0]]
    for name, route in ROUTES.items():
        cmd += ["--route", f"{name}={route}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = {d["name"]: d for d in (json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{"))}
    if set(out) != set(ROUTES):
        raise RuntimeError(f"hops.py exit {r.returncode}: {r.stderr.strip()[-1500:]}")
    return out


def floor(res: dict[str, dict]) -> str:
    """What the raw hops leave of 10x Ray's c = 1 throughput: at c = 1 a
    closed loop's throughput is one over its mean latency, so 10x Ray's
    needs a mean a tenth of Ray's."""
    lines = []
    for w, hops in res["sluice"].get("hops", {}).items():
        ray = next((r for r in res["ray"][w] if r.get("c") == 1 and r.get("rps")), None)
        if ray is None:
            continue
        budget = 1e3 / ray["rps"] / 10
        lines.append(f"{w}: {hops['hops']} raw confluent-kafka hops (no Sluice code) take p50 {hops['p50_ms']:.2f} ms, "
                     f"mean {hops['mean_ms']:.2f} ms; 10x Ray's c = 1 throughput ({ray['rps']:,.0f} req/s) needs a "
                     f"mean of {budget:.2f} ms: the hops alone allow at most "
                     f"{1e3 / ray['rps'] / hops['mean_ms']:.1f}x")
    return "\n".join(lines)


RAY_IMPORTS = [("from sluice import serve", "from ray import serve"),
               ("from sluice.serve.handle import", "from ray.serve.handle import")]


def ray_copy(work: Path) -> Path:
    """examples/python's hello.py and chain.py with Ray's imports."""
    d = work / "ray-examples"
    d.mkdir()
    for ex in ("hello.py", "chain.py"):
        src = (EXAMPLES / ex).read_text()
        for old, new in RAY_IMPORTS:
            src = src.replace(old, new)
        if any("sluice" in ln for ln in src.splitlines() if not ln.lstrip().startswith("#")):
            raise RuntimeError(f"{ex}: sluice named beyond its imports")
        (d / ex).write_text(src)
    return d


RAY_DEPLOY = """
import sys
import ray
from ray import serve
sys.path.insert(0, sys.argv[2])
import hello
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[3])})
serve.run(hello.app, name="py-hello", route_prefix="/py/hello")
"""


def run_ray(concs: list[int], duration: float, warmup: float, work: Path) -> dict:
    ray = str(Path(sys.executable).parent / "ray")
    gcs, http = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="spray-", dir="/tmp")
    renv = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    code = ray_copy(work)
    address = f"127.0.0.1:{gcs}"
    log("ray start --head --num-cpus 16")
    with open(work / "ray-start.log", "wb") as f:
        subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
                        "--num-cpus", "16", "--include-dashboard", "false", "--disable-usage-stats",
                        "--temp-dir", tmp], env=renv, stdout=f, stderr=subprocess.STDOUT, check=True, timeout=300)
    try:
        log("serve.run(hello.app) on Ray")
        with open(work / "ray-deploy.log", "wb") as f:
            subprocess.run([sys.executable, "-c", RAY_DEPLOY, address, str(code), str(http)], env=renv, stdout=f,
                           stderr=subprocess.STDOUT, check=True, timeout=600)
        wait_http(f"http://127.0.0.1:{http}/py/hello", HELLO_BODY, "Hola x", 120)
        hello = [load_http(f"http://127.0.0.1:{http}/py/hello", HELLO_BODY, "Hola x", c, duration, warmup)
                 for c in concs]
        chain = load_handle(sys.executable, code, concs, duration, warmup, renv, address)
        return {"hello": hello, "chain": chain}
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def table(res: dict[str, dict]) -> str:
    rows = ["| workload | c | Sluice req/s | Ray req/s | throughput ratio | Sluice p50 ms | Ray p50 ms | p50 ratio |",
            "|---|---|---|---|---|---|---|---|"]
    for w in ("hello", "chain"):
        for s, r in zip(res["sluice"][w], res["ray"][w], strict=True):
            if "failed" in s or "failed" in r:
                rows.append(f"| {w} | {s.get('c', r.get('c'))} | {s.get('failed', '')} | {r.get('failed', '')} | | | | |")
                continue
            errs = f" ({s['errors']}/{r['errors']} errors)" if s.get("errors") or r.get("errors") else ""
            tr = s["rps"] / r["rps"] if r["rps"] else float("inf")
            pr = r["p50_ms"] / s["p50_ms"] if s["p50_ms"] else float("inf")
            rows.append(f"| {w}{errs} | {s['c']} | {s['rps']:,.0f} | {r['rps']:,.0f} | {tr:.1f}x | "
                        f"{s['p50_ms']:.2f} | {r['p50_ms']:.2f} | {pr:.1f}x |")
    return "\n".join(rows)


def main() -> int:
    duration = float(os.environ.get("BENCH_DURATION", "5").rstrip("s"))
    warmup = float(os.environ.get("BENCH_WARMUP", "2").rstrip("s"))
    concs = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1 16 64").split()]
    work = Path(tempfile.mkdtemp(prefix="sluice-pyports-"))
    before = os.getloadavg()
    log(f"load average {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; logs in {work}")
    res = {"sluice": run_sluice(concs, duration, warmup, work)}
    mid = os.getloadavg()
    res["ray"] = run_ray(concs, duration, warmup, work)
    after = os.getloadavg()
    print(f"Python ports on Sluice (embedded broker) and Ray Serve, {duration:g} s per point after {warmup:g} s; "
          f"{os.cpu_count()} cores; load average before {before[0]:.2f}, between {mid[0]:.2f}, after {after[0]:.2f}")
    print(table(res))
    print(floor(res))
    print(json.dumps(res), file=open(work / "results.json", "w"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
