#!/usr/bin/env python3
"""Side-by-side benchmark of Sluice and Ray Serve on this machine.

Run by scripts/bench.sh (make bench) with the Python of the cached Ray
virtualenv; standard library and matplotlib only. For each system it starts
the system, waits until every route answers correctly, runs bin/sluice-load
(closed loop) for each workload x concurrency while sampling the system's
processes every 200 ms, stops the system, and writes
bench/results/<date>.md and .png (copied to latest.md and latest.png).

Systems:
  sluice-embedded  bin/sluice dev (platform and broker in one process)
  sluice-kafka     scripts/kafka.sh start, then bin/sluice dev --brokers
  ray              ray start --head, then bench/ray/apps.py deploys the
                   applications with serve.run on one HTTP proxy

Workload 5 (multiplex) needs models: 50 sluice-linear models m0..m49
(model.json, y = (i+2)x + 1) are written to a temporary directory; Sluice
gets them with `bin/sluice models push m<i> <dir> --label bench=multiplex`
and `bin/sluice deploy -f bench/sluice/multiplex.yaml` once it is up, Ray's
multiplexed deployment reads the same files. Requests pick the model from a
Zipf(1.1) mix (sluice-load -models 50 -zipf 1.1): POST
/v2/models/{model}/infer on Sluice, POST /multiplex with the header
serve_multiplexed_model_id: {model} on Ray.

Which processes belong to a system: each system is started in a new session
(setsid), and every process whose session id is that session's, plus every
descendant of one, is counted. Ray's daemons (gcs_server, raylet, the proxy
and replica actors, log monitor, agents, idle workers) all keep the session
of `ray start`; Kafka's JVM is started by kafka.sh with its own setsid, so it
is a session of its own and is reported separately as well as summed. CPU is
utime+stime from /proc/<pid>/stat, kept per pid so processes that exit
mid-window still count; RSS is the sum of the processes' resident sets (so
pages shared between Ray's Python processes are counted once per process).

Options come from the environment (scripts/bench.sh documents them):
BENCH_DURATION, BENCH_WARMUP, BENCH_CONCURRENCY, BENCH_SYSTEMS,
BENCH_WORKLOADS, BENCH_MAX_LOAD, BENCH_LOAD_WAIT, BENCH_COMMAND, BENCH_OUT,
BENCH_NAME.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
RESULTS = Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "results")
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.2

# workload -> (route, body, check of the answer)
WORKLOADS = {
    "noop": ("/noop", '{"x":1}', lambda b: json.loads(b) == {"x": 1}),
    "chain": ("/chain", "5", lambda b: json.loads(b) == 12),
    "chain10": ("/chain10", '{"x":1}', lambda b: json.loads(b) == {"x": 1}),
    "hello": (
        "/hello",
        '{"language":"spanish","name":"x"}',
        lambda b: b.strip().strip('"') == "Hola x",
    ),
    # {model} is put in by sluice-load (and by wait_ready, model by model)
    "multiplex": (
        "/v2/models/{model}/infer",
        '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[3]}]}',
        lambda b: "outputs" in json.loads(b),
    ),
}
# workload 5: how many models, their mix, and Ray's way of naming the model
MODELS = 50
ZIPF = 1.1
MODEL_LABEL = "bench=multiplex"
MIXES = {"multiplex": ["-models", str(MODELS), "-zipf", str(ZIPF)]}
# workload -> (route, headers) on Ray where they differ from WORKLOADS
RAY_ROUTES = {"multiplex": ("/multiplex", {"serve_multiplexed_model_id": "{model}"})}
TITLES = {
    "noop": "1. noop (one deployment)",
    "chain": "2. chain (Adder -> Multiplier, forwarded)",
    "chain10": "3. chain10 (ten deployments)",
    "hello": "4. hello (classifier -> responder)",
    "multiplex": f"5. multiplex ({MODELS} models, Zipf {ZIPF}, 4 replicas x 5 models)",
}
SYSTEM_ORDER = ["sluice-embedded", "sluice-kafka", "ray"]


def env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_list() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    return ",".join(map(str, cpus))


def taskset() -> list[str]:
    if shutil.which("taskset"):
        return ["taskset", "-c", cpu_list()]
    return []


# ---- /proc sampling --------------------------------------------------------
def read_stat(pid: int):
    """(ppid, session, cpu seconds, rss bytes) of pid, or None if gone.

    Zombies count as gone: an exited child of ours lingers as one until it
    is reaped, and must not make stop_session wait."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2 :].split()
    if rest[0] == "Z":
        return None
    # rest[0] is field 3 (state): ppid=4, session=6, utime=14, stime=15, rss=24
    return (
        int(rest[1]),
        int(rest[3]),
        (int(rest[11]) + int(rest[12])) / TICK,
        int(rest[21]) * PAGE,
    )


def snapshot():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st:
                out[int(name)] = st
    return out


def members(snap, sessions: set[int]) -> set[int]:
    """Processes in one of sessions, and all their descendants."""
    found = {pid for pid, st in snap.items() if st[1] in sessions}
    children: dict[int, list[int]] = {}
    for pid, st in snap.items():
        children.setdefault(st[0], []).append(pid)
    stack = list(found)
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in found:
                found.add(c)
                stack.append(c)
    return found


@dataclass
class Group:
    sessions: set[int]
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> last seen
    base: dict[int, float] = field(default_factory=dict)  # pid -> at window start
    peak_rss: int = 0
    pids_seen: set[int] = field(default_factory=set)

    def update(self, snap) -> None:
        rss = 0
        for pid in members(snap, self.sessions):
            st = snap[pid]
            self.cpu[pid] = st[2]
            rss += st[3]
            self.pids_seen.add(pid)
        self.peak_rss = max(self.peak_rss, rss)

    def mark(self) -> None:
        self.base = dict(self.cpu)

    def cpu_since_mark(self) -> float:
        # a pid born after the mark counts from zero
        return sum(v - self.base.get(pid, 0.0) for pid, v in self.cpu.items())


class Sampler(threading.Thread):
    def __init__(self, groups: dict[str, Group]):
        super().__init__(daemon=True)
        self.groups = groups
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()

    def sample(self) -> None:
        snap = snapshot()
        with self.lock:
            for g in self.groups.values():
                g.update(snap)

    def run(self) -> None:
        while not self.stop_evt.wait(SAMPLE_EVERY):
            self.sample()

    def mark(self) -> None:
        self.sample()
        with self.lock:
            for g in self.groups.values():
                g.mark()


# ---- systems ---------------------------------------------------------------
def stop_session(sid: int, grace: float = 10.0) -> None:
    """SIGTERM every process of the session (and descendants), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = members(snapshot(), {sid})
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and members(snapshot(), {sid}):
            time.sleep(0.1)


def post(url: str, body: str, timeout: float = 5.0, headers: dict | None = None):
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def model_y(i: int) -> float:
    """The answer of model m<i> to x = 3 (see write_models)."""
    return 3 * (i + 2) + 1


def write_models(root: Path) -> Path:
    """MODELS sluice-linear models m<i>/model.json, y = (i+2)x + 1."""
    for i in range(MODELS):
        d = root / f"m{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.json").write_text(json.dumps(
            {"input": "x", "output": "y", "weights": [[i + 2]], "bias": [1]}))
    return root


def targets(workloads: list[str], ray: bool):
    """(workload, route, headers, check) of each request wait_ready sends:
    one per workload, one per model for multiplex."""
    out = []
    for w in workloads:
        route, body, check = WORKLOADS[w]
        headers = {}
        if ray and w in RAY_ROUTES:
            route, headers = RAY_ROUTES[w]
        if w not in MIXES:
            out.append((w, route, headers, body, check))
            continue
        for i in range(MODELS):
            sub = lambda v, i=i: v.replace("{model}", f"m{i}")  # noqa: E731
            want = model_y(i)
            out.append((w, sub(route), {k: sub(v) for k, v in headers.items()}, body,
                        lambda b, want=want: json.loads(b)["outputs"][0]["data"] == [want]))
    return out


def wait_ready(base: str, workloads: list[str], timeout: float, alive, ray: bool = False) -> None:
    deadline = time.monotonic() + timeout
    pending = targets(workloads, ray)
    last = ""
    while pending:
        if not alive():
            raise RuntimeError("system exited while starting")
        if time.monotonic() > deadline:
            left = sorted({p[0] for p in pending})
            raise RuntimeError(f"routes not ready after {timeout:.0f}s: {left} ({last})")
        _, route, headers, body, check = pending[0]
        try:
            status, answer = post(base + route, body, headers=headers)
            if status == 200 and check(answer):
                pending.pop(0)
                continue
            last = f"{route}: {status} {answer[:200]}"
        except (OSError, urllib.error.URLError, ValueError, KeyError, IndexError, TypeError) as e:
            last = f"{route}: {e}"
        time.sleep(0.5)


class Sluice:
    def __init__(self, name: str, workdir: Path, brokers_via_kafka: bool, models: Path):
        self.name = name
        self.workdir = workdir
        self.models = models
        self.kafka = brokers_via_kafka
        self.proc = None
        self.kafka_sid = None
        self.kafka_state = None
        self.groups: dict[str, Group] = {}
        self.settings: list[str] = []

    def start(self, workloads: list[str]) -> str:
        port, grpc = free_port(), free_port()
        cmd = [
            str(BIN / "sluice"), "dev",
            "--http", f"127.0.0.1:{port}",
            "--grpc", f"127.0.0.1:{grpc}",
            "-f", "bench/sluice/noop.yaml",
            "-f", "bench/sluice/chain10.yaml",
        ]
        if self.kafka:
            self.kafka_state = tempfile.mkdtemp(prefix="sluice-bench-kafka-")
            kenv = dict(os.environ, KAFKA_STATE_DIR=self.kafka_state)
            log("starting Kafka (scripts/kafka.sh start)")
            out = subprocess.run(
                taskset() + ["scripts/kafka.sh", "start"],
                cwd=ROOT, env=kenv, check=True, capture_output=True, text=True,
                timeout=600,
            )
            brokers = out.stdout.strip().splitlines()[-1].split("=", 1)[1]
            jvm = int(Path(self.kafka_state, "broker.pid").read_text().strip())
            self.kafka_sid = read_stat(jvm)[1]
            self.groups["kafka"] = Group({self.kafka_sid})
            cmd += ["--brokers", brokers]
            self.settings.append(
                f"Kafka: `scripts/kafka.sh start` (single-node KRaft broker on "
                f"{brokers}, default heap -Xms128m -Xmx768m, G1)"
            )
        self.settings.append("Sluice: `" + " ".join(
            [c.replace(str(ROOT) + "/", "") for c in cmd]) + "` (plus its built-in /chain and /hello)")
        log(f"starting {self.name}")
        self.log = open(self.workdir / f"{self.name}.log", "wb")
        self.proc = subprocess.Popen(
            taskset() + cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.groups["sluice"] = Group({self.proc.pid})
        base = f"http://127.0.0.1:{port}"
        alive = lambda: self.proc.poll() is None  # noqa: E731
        plain = [w for w in workloads if w not in MIXES]
        wait_ready(base, plain, 120, alive)
        if "multiplex" in workloads:
            self.deploy_models(f"127.0.0.1:{port}", f"127.0.0.1:{grpc}", alive)
            # the first request for each model loads it (and evicts others)
            wait_ready(base, ["multiplex"], 180, alive)
        return base

    def deploy_models(self, http: str, grpc: str, alive) -> None:
        """Push the MODELS models and deploy bench/sluice/multiplex.yaml."""
        log(f"pushing {MODELS} models and deploying bench/sluice/multiplex.yaml")

        def sluice(*args: str, retry: float = 0) -> None:
            deadline = time.monotonic() + retry
            while True:
                r = subprocess.run([str(BIN / "sluice"), *args], cwd=ROOT,
                                   capture_output=True, text=True, timeout=60)
                if r.returncode == 0:
                    return
                if time.monotonic() > deadline or not alive():
                    raise RuntimeError(f"sluice {' '.join(args[:3])}: exit {r.returncode}: "
                                       f"{r.stderr.strip()[-300:]}")
                time.sleep(0.5)

        for i in range(MODELS):
            # the platform may still be starting: retry the first one
            sluice("models", "push", f"m{i}", str(self.models / f"m{i}"),
                   "--label", MODEL_LABEL, "--grpc-addr", grpc, retry=120 if i == 0 else 0)
        sluice("deploy", "-f", "bench/sluice/multiplex.yaml", "--addr", http, retry=30)
        self.settings.append(
            f"Sluice, workload 5: `bin/sluice models push m<i> <dir> --label {MODEL_LABEL}` "
            f"for i < {MODELS} (sluice-linear model.json, y = (i+2)x + 1), then "
            "`bin/sluice deploy -f bench/sluice/multiplex.yaml` (kind: model, 4 replicas, "
            "max_models_per_replica: 5)")

    def stop(self) -> None:
        if self.proc is not None:
            stop_session(self.proc.pid)
            self.proc.wait()
            self.log.close()
        if self.kafka_state:
            subprocess.run(
                ["scripts/kafka.sh", "stop"], cwd=ROOT,
                env=dict(os.environ, KAFKA_STATE_DIR=self.kafka_state),
                capture_output=True, timeout=120,
            )
            if self.kafka_sid:
                stop_session(self.kafka_sid, grace=5)
            shutil.rmtree(self.kafka_state, ignore_errors=True)


class Ray:
    name = "ray"

    def __init__(self, workdir: Path, models: Path):
        self.workdir = workdir
        self.models = models
        self.sid = None
        self.tmp = None
        self.groups: dict[str, Group] = {}
        self.settings: list[str] = []
        self.ray = str(Path(sys.executable).parent / "ray")

    def start(self, workloads: list[str]) -> str:
        # short path: Ray's unix sockets live under the temp dir
        self.tmp = tempfile.mkdtemp(prefix="sbray-", dir="/tmp")
        gcs, http = free_port(), free_port()
        renv = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        cmd = [
            self.ray, "start", "--head", "--node-ip-address", "127.0.0.1",
            "--port", str(gcs), "--num-cpus", "2", "--include-dashboard", "false",
            "--disable-usage-stats", "--temp-dir", self.tmp,
        ]
        log("starting Ray (ray start --head)")
        with open(self.workdir / "ray-start.log", "wb") as f:
            p = subprocess.Popen(taskset() + cmd, env=renv, stdout=f,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            self.sid = p.pid
            self.groups["ray"] = Group({self.sid})
            if p.wait(timeout=180) != 0:
                raise RuntimeError(f"ray start failed (see {f.name})")
        driver = [sys.executable, "bench/ray/apps.py", "--address",
                  f"127.0.0.1:{gcs}", "--http-port", str(http),
                  "--apps", ",".join(workloads), "--models-dir", str(self.models)]
        log("deploying the Ray Serve applications (bench/ray/apps.py)")
        with open(self.workdir / "ray-deploy.log", "wb") as f:
            # the driver runs in Ray's session so its processes are counted
            # while it lives; it exits once the applications are RUNNING
            r = subprocess.run(taskset() + driver, cwd=ROOT, env=renv, stdout=f,
                               stderr=subprocess.STDOUT, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"deploying to Ray failed (see {f.name})")
        shown = ["ray"] + cmd[1:]
        shown[shown.index("--port") + 1] = "<free>"
        shown[shown.index("--temp-dir") + 1] = "/tmp/sbray-XXXX"
        self.settings += [
            "Ray: `" + " ".join(shown) + "`, RAY_USAGE_STATS_ENABLED=0",
            "Ray Serve: `serve.start(http_options={host: 127.0.0.1, port: <free>})`, "
            "then `serve.run(app, name, route_prefix)` per application from a driver "
            "(bench/ray/apps.py) that exits; one HTTP proxy; every deployment "
            "num_replicas=1, max_ongoing_requests=100, ray_actor_options={num_cpus: 0} "
            "(a scheduling reservation only, so that 16 replicas fit on 2 CPUs); "
            "workload 5's Multiplexed deployment num_replicas=4 with "
            "@serve.multiplexed(max_num_models_per_replica=5), reading the same model.json files",
        ]
        base = f"http://127.0.0.1:{http}"
        wait_ready(base, workloads, 180, lambda: True, ray=True)
        return base

    def stop(self) -> None:
        if self.sid is None:
            return
        subprocess.run([self.ray, "stop", "--force"], capture_output=True, timeout=120)
        stop_session(self.sid, grace=5)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def idle_cpu(sampler: Sampler, settle: float = 3.0, window: float = 5.0) -> str:
    """CPU the ready system uses with no requests, in cores, per group."""
    time.sleep(settle)
    sampler.mark()
    time.sleep(window)
    sampler.sample()
    with sampler.lock:
        return ", ".join(f"{name} {g.cpu_since_mark() / window:.2f} cores"
                         for name, g in sampler.groups.items())


# ---- load ------------------------------------------------------------------
def run_load(url: str, body: str, conc: int, duration: str, warmup: str,
             sampler: Sampler, warmup_s: float, extra: list[str] | None = None) -> dict:
    cmd = taskset() + [
        str(BIN / "sluice-load"), "-url", url, "-body", body, "-c", str(conc),
        "-duration", duration, "-warmup", warmup, "-json", *(extra or []),
    ]
    with sampler.lock:
        for g in sampler.groups.values():
            g.peak_rss = 0
    sampler.sample()
    marked = threading.Timer(warmup_s, sampler.mark)
    marked.start()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=parse_seconds(duration) + warmup_s + 120)
    finally:
        marked.cancel()
    sampler.sample()
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"failed": f"sluice-load exit {r.returncode}: {r.stderr.strip()[-300:]}"}
    res = json.loads(lines[-1])
    with sampler.lock:
        for name, g in sampler.groups.items():
            res[f"cpu_{name}"] = g.cpu_since_mark()
            res[f"rss_{name}"] = g.peak_rss / 2**20
    return res


def parse_seconds(s: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(ms|s|m)?", s.strip())
    if not m:
        raise SystemExit(f"bad duration {s!r} (use e.g. 10s)")
    v = float(m.group(1))
    return {"ms": v / 1000, "m": v * 60}.get(m.group(2), v)


# ---- report ----------------------------------------------------------------
def fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if v < 1 else f"{v:.{digits}g}"


def machine() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "model": model, "mem_gib": mem_kb / 2**20,
            "kernel": platform.release()}


def versions() -> dict:
    v = {"python": platform.python_version()}
    try:
        import ray  # noqa: F401

        v["ray"] = ray.__version__
    except Exception as e:  # noqa: BLE001
        v["ray"] = f"not importable ({e})"
    try:
        v["go"] = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.split()[2]
    except Exception:  # noqa: BLE001
        v["go"] = "?"
    m = re.search(r"^KAFKA_VERSION=(\S+)", (ROOT / "scripts/kafka.sh").read_text(), re.M)
    v["kafka"] = m.group(1) if m else "?"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        v["sluice"] = rev + (" + uncommitted changes" if dirty else "")
    except Exception:  # noqa: BLE001
        v["sluice"] = "?"
    return v


def cpu_per_1k(res: dict, group: str) -> float | None:
    if "failed" in res or not res.get("requests"):
        return None
    return res[f"cpu_{group}"] / res["requests"] * 1000


def system_cpu_rss(system: str, res: dict):
    groups = ["kafka", "sluice"] if system == "sluice-kafka" else (
        ["ray"] if system == "ray" else ["sluice"])
    if "failed" in res:
        return None, None, ""
    cpu = sum(cpu_per_1k(res, g) or 0 for g in groups)
    rss = sum(res[f"rss_{g}"] for g in groups)
    note = ""
    if system == "sluice-kafka":
        note = f" (broker {fmt(cpu_per_1k(res, 'kafka'))} / {fmt(res['rss_kafka'])})"
    return cpu, rss, note


def report(results, meta) -> str:
    out = [f"# Sluice against Ray Serve, {meta['date']}", ""]
    m, v = meta["machine"], meta["versions"]
    out += [
        f"- Machine: {m['nproc']} cores ({m['model']}), {m['mem_gib']:.1f} GiB memory, "
        f"Linux {m['kernel']}; load average before the run {meta['load_before']}"
        + (f" (waited {meta['waited_s']:.0f}s for it to drop)" if meta["waited_s"] else "")
        + f", after {meta['load_after']} (the benchmark's own run queue)",
        f"- Command: `{meta['command']}` "
        f"(BENCH_DURATION={meta['duration']} BENCH_WARMUP={meta['warmup']} "
        f"BENCH_CONCURRENCY=\"{' '.join(map(str, meta['concurrency']))}\" "
        f"BENCH_SYSTEMS=\"{' '.join(meta['systems'])}\" "
        f"BENCH_WORKLOADS=\"{' '.join(meta['workloads'])}\")",
        f"- Versions: Sluice {v['sluice']}, {v['go']}, Ray {v['ray']} (Python {v['python']}), "
        f"Apache Kafka {v['kafka']}",
        f"- CPU: {meta['cpu_limit']}",
        "- Load: `bin/sluice-load -c N -duration D -warmup W -json`, closed loop, "
        "one HTTP keep-alive connection per worker, on the same cores as the system",
        "- CPU s / 1k req: utime+stime of all the system's processes over the measured "
        "window (after warm-up) per 1,000 requests; peak RSS: the largest sum of their "
        "resident sets in 200 ms samples (shared pages count once per process). "
        "Processes: the session (setsid) each system was started in, plus descendants; "
        "for sluice-kafka the broker JVM's own session is added and shown in brackets. "
        "The load generator is not counted. All the applications are deployed at once "
        "on each system, so RSS is the footprint serving all of them.",
        f"- Workload 5 (multiplex): {MODELS} models, each request's model drawn from a "
        f"Zipf({ZIPF}) mix with a fixed seed (`sluice-load -models {MODELS} -zipf {ZIPF}`, "
        "m0 the most frequent); Sluice: `POST /v2/models/{model}/infer`; Ray: `POST /multiplex` "
        "with `serve_multiplexed_model_id: {model}`; the same OIP JSON body and answer, "
        "4 replicas x at most 5 loaded models on both.",
        "",
        "Settings:",
        "",
    ]
    out += [f"- {s}" for s in meta["settings"]]
    if meta["idle"]:
        out += ["- CPU while idle (ready, no requests, 5 s, counted in CPU s / 1k req): "
                + "; ".join(f"{s}: {v}" for s, v in meta["idle"].items())]
    out += [""]
    for sysname, err in meta["system_errors"].items():
        out += [f"**{sysname} failed:** {err}", ""]
    verdicts = []
    for w in meta["workloads"]:
        out += [f"## {TITLES[w]}", "",
                "| system | conc. | p50 ms | p99 ms | req/s | CPU s / 1k req | peak RSS MiB | errors |",
                "|---|---|---|---|---|---|---|---|"]
        for s in meta["systems"]:
            for c in meta["concurrency"]:
                res = results.get((s, w, c))
                if res is None:
                    continue
                if "failed" in res:
                    out.append(f"| {s} | {c} | | | | | | failed: {res['failed'][:120]} |")
                    continue
                cpu, rss, note = system_cpu_rss(s, res)
                errs = str(res["errors"]) + (f" ({res['first_error'][:80]})" if res.get("first_error") else "")
                cpu_s = fmt(cpu) + (f" ({fmt(cpu_per_1k(res, 'kafka'))})" if s == "sluice-kafka" else "")
                rss_s = fmt(rss) + (f" ({fmt(res['rss_kafka'])})" if s == "sluice-kafka" else "")
                out.append(f"| {s} | {c} | {fmt(res['p50_ms'])} | {fmt(res['p99_ms'])} | "
                           f"{res['rps']:,.0f} | {cpu_s} | {rss_s} | {errs} |")
        out.append("")
        for s, p50_target, rps_target in (("sluice-embedded", 3, 10), ("sluice-kafka", 1, 5)):
            line, ok = ratios(results, s, w, meta["concurrency"], p50_target, rps_target)
            if line:
                out.append(line)
                verdicts.append((w, s, ok))
        out.append("")
    if verdicts:
        out += ["## Targets", ""]
        for w, s, ok in verdicts:
            out.append(f"- {w}, {s}: {ok}")
        out.append("")
    return "\n".join(out)


def ratios(results, s, w, concs, p50_target, rps_target):
    parts, p50_ok, have = [], True, False
    for c in concs:
        a, b = results.get((s, w, c)), results.get(("ray", w, c))
        if not a or not b or "failed" in a or "failed" in b or not a["p50_ms"] or not a["rps"]:
            continue
        have = True
        pr, tr = b["p50_ms"] / a["p50_ms"], a["rps"] / b["rps"]
        p50_ok &= pr >= p50_target
        parts.append(f"c={c}: p50 {pr:.1f}x lower, throughput {tr:.1f}x")
    if not have:
        return "", ""
    peak = lambda sysname: max((results[(sysname, w, c)]["rps"] for c in concs  # noqa: E731
                                if (sysname, w, c) in results and "failed" not in results[(sysname, w, c)]),
                               default=0)
    peak_ratio = peak(s) / peak("ray") if peak("ray") else float("inf")
    rps_ok = peak_ratio >= rps_target
    want = "≥3x lower" if p50_target == 3 else "no worse"
    verdict = (f"p50 {want} at every concurrency: {'met' if p50_ok else 'NOT met'}; "
               f"peak throughput {peak_ratio:.1f}x (target ≥{rps_target}x): "
               f"{'met' if rps_ok else 'NOT met'}")
    line = f"**{s} vs ray:** " + "; ".join(parts) + f". Peak throughput {peak_ratio:.1f}x. {verdict}."
    return line, verdict


def plot(results, meta, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = meta["workloads"]
    cols = 2 if len(ws) > 1 else 1
    rows = (len(ws) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.6 * rows), squeeze=False)
    colors = {"sluice-embedded": "tab:blue", "sluice-kafka": "tab:green", "ray": "tab:red"}
    for ax, w in zip(axes.flat, ws):
        for s in meta["systems"]:
            pts = [(c, results[(s, w, c)]) for c in meta["concurrency"]
                   if (s, w, c) in results and "failed" not in results[(s, w, c)]]
            if not pts:
                continue
            xs = [r["rps"] for _, r in pts]
            ys = [r["p50_ms"] for _, r in pts]
            ax.plot(xs, ys, "o-", color=colors.get(s), label=s)
            for (c, _), x, y in zip(pts, xs, ys):
                ax.annotate(f"c{c}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(TITLES[w], fontsize=10)
        ax.set_xlabel("throughput, req/s (log)")
        ax.set_ylabel("p50 latency, ms (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(ws):]:
        ax.set_visible(False)
    fig.suptitle(f"Sluice vs Ray Serve, {meta['date']}, {meta['machine']['nproc']} cores "
                 f"({meta['machine']['model']}), closed loop c = {', '.join(map(str, meta['concurrency']))}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- main ------------------------------------------------------------------
def wait_for_quiet(max_load: float, max_wait: float) -> float:
    started = time.monotonic()
    while os.getloadavg()[0] > max_load and time.monotonic() - started < max_wait:
        log(f"load average {os.getloadavg()[0]:.2f} > {max_load}; waiting")
        time.sleep(15)
    return time.monotonic() - started


@contextlib.contextmanager
def shielded():
    """Ignore Ctrl-C and SIGTERM while a system is being stopped, so that a
    second interrupt cannot leave half of it running."""
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def on_sigterm(*_) -> None:
    """SIGTERM behaves like Ctrl-C, so the finally blocks stop everything."""
    raise KeyboardInterrupt


def main() -> int:
    duration = env("BENCH_DURATION", "10s")
    warmup = env("BENCH_WARMUP", "2s")
    concs = [int(c) for c in env("BENCH_CONCURRENCY", "1 16 64").split()]
    systems = env("BENCH_SYSTEMS", " ".join(SYSTEM_ORDER)).split()
    workloads = env("BENCH_WORKLOADS", " ".join(WORKLOADS)).split()
    for s in systems:
        if s not in SYSTEM_ORDER:
            raise SystemExit(f"unknown system {s} ({' '.join(SYSTEM_ORDER)})")
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w} ({' '.join(WORKLOADS)})")
    for b in ("sluice", "sluice-load"):
        if not (BIN / b).exists():
            raise SystemExit(f"bin/{b} missing (scripts/bench.sh builds it)")

    signal.signal(signal.SIGTERM, on_sigterm)

    waited = wait_for_quiet(float(env("BENCH_MAX_LOAD", "1.5")), float(env("BENCH_LOAD_WAIT", "300")))
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.monotonic()
    meta = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "versions": versions(),
        "command": env("BENCH_COMMAND", "make bench"),
        "duration": duration, "warmup": warmup, "concurrency": concs,
        "systems": systems, "workloads": workloads,
        "cpu_limit": (f"the system and the load generator all run under `taskset -c {cpu_list()}`"
                      if taskset() else "no taskset on this machine: no CPU pinning"),
        "settings": [], "system_errors": {}, "idle": {},
        "load_before": load_before, "waited_s": waited,
    }
    results: dict = {}
    warmup_s = parse_seconds(warmup)
    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    log(f"logs in {workdir}")
    models = write_models(workdir / "models")
    try:
        for s in systems:
            sysobj = (Ray(workdir, models) if s == "ray"
                      else Sluice(s, workdir, s == "sluice-kafka", models))
            sampler = None
            try:
                t0 = time.monotonic()
                base = sysobj.start(workloads)
                log(f"{s} ready in {time.monotonic() - t0:.1f}s at {base}")
                sampler = Sampler(sysobj.groups)
                sampler.start()
                meta["idle"][s] = idle_cpu(sampler)
                log(f"{s} idle: {meta['idle'][s]}")
                for w in workloads:
                    route, body, _ = WORKLOADS[w]
                    extra = list(MIXES.get(w, []))
                    if s == "ray" and w in RAY_ROUTES:
                        route, headers = RAY_ROUTES[w]
                        for k, v in headers.items():
                            extra += ["-header", f"{k}: {v}"]
                    for c in concs:
                        res = run_load(base + route, body, c, duration, warmup, sampler, warmup_s, extra)
                        results[(s, w, c)] = res
                        if "failed" in res:
                            log(f"{s} {w} c={c}: {res['failed']}")
                        else:
                            cpu, rss, note = system_cpu_rss(s, res)
                            log(f"{s} {w} c={c}: p50 {res['p50_ms']:.3f} ms p99 {res['p99_ms']:.3f} ms "
                                f"{res['rps']:,.0f} req/s errors {res['errors']} "
                                f"cpu {cpu:.3f} s/1k rss {rss:.0f} MiB{note}")
            except Exception as e:  # noqa: BLE001 — one system failing must not lose the others
                meta["system_errors"][s] = f"{type(e).__name__}: {e} (logs in {workdir})"
                log(f"{s} failed: {e}")
            finally:
                if sampler:
                    sampler.stop_evt.set()
                log(f"stopping {s}")
                with shielded():
                    sysobj.stop()
                meta["settings"] += sysobj.settings
    finally:
        meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        meta["total_s"] = time.monotonic() - started
        if results:
            RESULTS.mkdir(parents=True, exist_ok=True)
            text = report(results, meta) + f"\nTotal run time {meta['total_s'] / 60:.1f} min.\n"
            name = env("BENCH_NAME", "")
            md = RESULTS / f"{name or meta['date']}.md"
            png = RESULTS / f"{name or meta['date']}.png"
            md.write_text(text)
            plot(results, meta, png)
            if not name:  # a named run does not replace latest.*
                shutil.copyfile(md, RESULTS / "latest.md")
                shutil.copyfile(png, RESULTS / "latest.png")
            log(f"wrote {md} and {png}{'' if name else ' (and latest.*)'} "
                f"in {meta['total_s'] / 60:.1f} min")
    return 1 if meta["system_errors"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        sys.exit(130)
