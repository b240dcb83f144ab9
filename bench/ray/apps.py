"""Ray Serve mirrors of the Sluice benchmark workloads (bench/run.py).

Four applications, each at its own route prefix on the one Serve HTTP proxy:

  /noop     one deployment returning the JSON body (bench/sluice/noop.yaml)
  /chain    Ingress -> Adder(1), Multiplier(2); the adder's DeploymentResponse
            is passed, unawaited, into the multiplier's .remote() (Serve
            resolves it), as examples/chain/chain.go does with RemoteFuture
  /chain10  ten deployments, each calling the next through a handle; the last
            one returns (bench/sluice/chain10.yaml; the shape of Ray's own
            nightly "deployment chain" benchmark)
  /hello    LanguageClassifier with handles to SpanishResponder and
            FrenchResponder (examples/hello/hello.go)
  /multiplex  Multiplexed: 4 replicas, @serve.multiplexed with at most 5
            models each; the model is named by the serve_multiplexed_model_id
            header and its weights are read from <--models-dir>/<model>/
            model.json, the sluice-linear files bench/run.py pushes to
            Sluice's registry (bench/sluice/multiplex.yaml); y = xW + b in
            plain Python on the OIP JSON body

Every deployment but Multiplexed: 1 replica, max_ongoing_requests=100 (what Sluice's noop
deployment allows), and num_cpus=0 so that all sixteen replicas fit on a
2-core node (Ray reserves 1 CPU per replica actor by default, which would
leave most of chain10 pending on two cores). num_cpus is a scheduling
reservation only; it does not limit the CPU a replica may use.

Run as a driver against a running cluster:

  python bench/ray/apps.py --address 127.0.0.1:6379 --http-port 8000

It starts Serve with its HTTP proxy on 127.0.0.1:<port>, deploys the four
applications, waits until they are RUNNING and exits; Serve keeps serving
(its controller is a detached actor) until `ray stop`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

OPTIONS = dict(
    num_replicas=1,
    max_ongoing_requests=100,
    ray_actor_options={"num_cpus": 0},
)


# ---- workload 1: noop ------------------------------------------------------
@serve.deployment(**OPTIONS)
class Noop:
    async def __call__(self, request: Request):
        return await request.json()


# ---- workload 2: chain -----------------------------------------------------
@serve.deployment(**OPTIONS)
class Adder:
    def __init__(self, increment: int):
        self.increment = increment

    def __call__(self, x: int) -> int:
        return x + self.increment


@serve.deployment(**OPTIONS)
class Multiplier:
    def __init__(self, multiple: int):
        self.multiple = multiple

    def __call__(self, x: int) -> int:
        return x * self.multiple


@serve.deployment(**OPTIONS)
class Ingress:
    def __init__(self, adder: DeploymentHandle, multiplier: DeploymentHandle):
        self.adder = adder
        self.multiplier = multiplier

    async def __call__(self, request: Request) -> int:
        x = await request.json()
        total = self.adder.remote(x)  # not awaited: handed to the multiplier
        return await self.multiplier.remote(total)


# ---- workload 3: chain10 ---------------------------------------------------
@serve.deployment(**OPTIONS)
class Step:
    """One link; the first one reads the HTTP body, the last one returns."""

    def __init__(self, next_step: DeploymentHandle | None = None):
        self.next_step = next_step

    async def __call__(self, x):
        if isinstance(x, Request):
            x = await x.json()
        if self.next_step is None:
            return x
        return await self.next_step.remote(x)


def chain10(n: int = 10):
    app = Step.options(name=f"Step{n - 1}").bind()
    for i in range(n - 2, -1, -1):
        app = Step.options(name=f"Step{i}").bind(app)
    return app


# ---- workload 4: hello -----------------------------------------------------
@serve.deployment(**OPTIONS)
class SpanishResponder:
    def __call__(self, name: str) -> str:
        return "Hola " + name


@serve.deployment(**OPTIONS)
class FrenchResponder:
    def __call__(self, name: str) -> str:
        return "Bonjour " + name


@serve.deployment(**OPTIONS)
class LanguageClassifier:
    def __init__(self, spanish: DeploymentHandle, french: DeploymentHandle):
        self.spanish = spanish
        self.french = french

    async def __call__(self, request: Request) -> str:
        req = await request.json()
        language = str(req.get("language", "")).lower()
        if language == "spanish":
            return await self.spanish.remote(req.get("name", ""))
        if language == "french":
            return await self.french.remote(req.get("name", ""))
        return "Please try again."


# ---- workload 5: multiplexed models ----------------------------------------
MODELS_DIR_ENV = "SLUICE_BENCH_MODELS_DIR"


@serve.deployment(
    num_replicas=4, max_ongoing_requests=100, ray_actor_options={"num_cpus": 0}
)
class Multiplexed:
    """A sluice-linear model server: OIP JSON in, y = xW + b out."""

    def __init__(self, models_dir: str):
        self.models_dir = models_dir

    @serve.multiplexed(max_num_models_per_replica=5)
    async def get_model(self, model_id: str) -> dict:
        # model ids come from a request header: keep them to a plain name
        if not model_id or "/" in model_id or model_id.startswith("."):
            raise ValueError(f"bad model id {model_id!r}")
        with open(os.path.join(self.models_dir, model_id, "model.json")) as f:
            return json.load(f)

    async def __call__(self, request: Request) -> dict:
        model_id = serve.get_multiplexed_model_id()
        model = await self.get_model(model_id)
        req = await request.json()
        inp = next(t for t in req["inputs"] if t["name"] == model["input"])
        w, b = model["weights"], model["bias"]
        k = len(w)
        x = inp["data"]
        rows = len(x) // k
        y = [
            sum(x[r * k + i] * w[i][j] for i in range(k)) + b[j]
            for r in range(rows)
            for j in range(len(b))
        ]
        return {
            "model_name": model_id,
            "outputs": [
                {
                    "name": model["output"],
                    "datatype": "FP32",
                    "shape": [rows, len(b)],
                    "data": y,
                }
            ],
        }


def multiplex():
    models_dir = os.environ.get(MODELS_DIR_ENV, "")
    if not models_dir:
        raise SystemExit(f"the multiplex app needs {MODELS_DIR_ENV} (or --models-dir)")
    return Multiplexed.bind(os.path.abspath(models_dir))


APPS = {
    "noop": lambda: Noop.bind(),
    "chain": lambda: Ingress.bind(Adder.bind(1), Multiplier.bind(2)),
    "chain10": chain10,
    "hello": lambda: LanguageClassifier.bind(
        SpanishResponder.bind(), FrenchResponder.bind()
    ),
    "multiplex": multiplex,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", required=True, help="Ray GCS address host:port")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--apps", default=",".join(APPS), help="comma-separated")
    ap.add_argument(
        "--models-dir",
        default=os.environ.get(MODELS_DIR_ENV, ""),
        help=f"multiplex: directory of <model>/model.json (env {MODELS_DIR_ENV})",
    )
    args = ap.parse_args()
    if args.models_dir:
        os.environ[MODELS_DIR_ENV] = args.models_dir

    import ray

    ray.init(address=args.address, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.http_port})
    started = time.monotonic()
    for name in args.apps.split(","):
        serve.run(APPS[name](), name=name, route_prefix="/" + name, blocking=False)
    # serve.run waits for each application to be RUNNING; report it.
    status = serve.status()
    for name, app in status.applications.items():
        print(f"ray app {name}: {app.status}", file=sys.stderr)
    print(f"deployed in {time.monotonic() - started:.1f}s", file=sys.stderr)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
