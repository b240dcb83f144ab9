"""Model multiplexing, with Ray Serve's names: a deployment's async
model-loading method decorated @serve.multiplexed(max_num_models_per_replica=N)
keeps at most N models per replica, least recently used first out;
serve.get_multiplexed_model_id() is the model the request being served
names (sl-model: the gateway's serve_multiplexed_model_id header, or
handle.options(multiplexed_model_id=...)).

The loader runs once per model id per replica: requests for a model
being loaded wait for that one load, which runs off their path (a
request that gives up does not abort a load others wait for). A loader
that raises fails the requests waiting for it, naming the exception, and
leaves nothing behind: the next request for the model loads it again.
An evicted model's __del__ is called (awaited when it is a coroutine
function), as Ray Serve does, before the cache lets go of it.

A replica publishes what its caches hold and have done as a models
report (models_report; Go's models.Report), so the gateway knows which
replica holds which model (OIP model ready, spreading a hot model), and
with metrics on, the same counts as Go's sluice_model_cache_* series
(model_counts; sluice.replica.metrics)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from sluice.protocol import InvalidArgument, SluiceError, Unavailable
from sluice.protocol.errors import Internal
from sluice.replica.context import current
from sluice.replica.metrics import ModelCounts
from sluice.replica.report import ModelsReport, go_time

DEFAULT_MAX_MODELS = 3
"""Ray Serve's default max_num_models_per_replica."""

MAX_MODEL_ID = 128
"""The registry's longest model name."""

FAILURE_SHOWN_S = 30.0
"""How long a failed load's reason stays in the models report (unless
the model loads first): the Go model cache's failure hold. The next
request for the model loads it again all the same."""

_CACHE_OF = "_sluice_cache_of"  # on a loader: its cache_of(args)

_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9][A-Za-z0-9._-]*)?")

_log = logging.getLogger("sluice.serve.multiplex")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def check_model_id(model_id: str) -> str:
    """model_id when it is safe as a record key and a cache name (what the
    gateway also checks): 1 to 128 ASCII letters, digits, '.', '_', '-',
    a letter or digit first, no "..", and at most one '@' before a
    version; else InvalidArgument naming it."""
    if not 0 < len(model_id) <= MAX_MODEL_ID or ".." in model_id or _MODEL_ID.fullmatch(model_id) is None:
        raise InvalidArgument(
            f"model id {model_id!r} is not 1 to {MAX_MODEL_ID} letters, digits, '.', '_' or '-' "
            "(a letter or digit first, no '..', '@' only before a version)"
        )
    return model_id


def get_multiplexed_model_id() -> str:
    """The model id the request being served names; "" when it names none
    or outside a request."""
    ctx = current()
    return ctx.model if ctx is not None else ""


class ModelCache:
    """The models one loader loaded on one replica, least recently used
    first. Used from one event loop."""

    def __init__(self, load: Callable[[str], Awaitable[Any]], capacity: int, name: str) -> None:
        self._load = load
        self.capacity = capacity
        self.name = name
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._failed: dict[str, tuple[str, float]] = {}  # model id: (why, when, monotonic)
        self._tasks: set[asyncio.Task[None]] = set()
        # Counted as the Go model cache counts: a hit finds the model
        # loaded or being loaded, a miss starts its load.
        self.hits = 0
        self.misses = 0
        self.loads = 0  # loads that succeeded
        self.failures = 0  # loads that raised or were cancelled
        self.evictions = 0
        self.on_change: Callable[[], None] | None = None
        """Called (on the loop, it must not block) when a load starts,
        ends or fails and when a model is evicted: a Publisher's poke."""

    def loaded(self) -> list[str]:
        """The model ids loaded now, most recently used first."""
        return list(reversed(self._loaded))

    def held(self) -> int:
        """How many models are loaded now (from any thread)."""
        return len(self._loaded)

    def loading(self) -> list[str]:
        """The model ids being loaded now, sorted."""
        return sorted(self._loading)

    def failed(self) -> dict[str, str]:
        """Why each model whose last load failed in the last
        FAILURE_SHOWN_S failed, by model id."""
        oldest = time.monotonic() - FAILURE_SHOWN_S
        for model_id in [m for m, (_, at) in self._failed.items() if at < oldest]:
            del self._failed[model_id]
        return {m: why for m, (why, _) in self._failed.items()}

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def get(self, model_id: str) -> Any:
        """The model of model_id, loading it first when it is not loaded."""
        check_model_id(model_id)
        if model_id in self._loaded:
            self.hits += 1
            self._loaded.move_to_end(model_id)
            return self._loaded[model_id]
        fut = self._loading.get(model_id)
        if fut is None:
            self.misses += 1
            fut = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_retrieve)
            self._loading[model_id] = fut
            task = asyncio.ensure_future(self._run(model_id, fut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._changed()
        else:
            self.hits += 1
        return await asyncio.shield(fut)

    async def _run(self, model_id: str, fut: asyncio.Future[Any]) -> None:
        try:
            await self._evict()  # room for this one
            model = await self._load(model_id)
        except asyncio.CancelledError:
            exc: Exception = Unavailable(f"{self.name}: loading model {model_id} was cancelled")
            self._fail(model_id, exc)
            fut.set_exception(exc)
            raise
        except Exception as exc:
            if not isinstance(exc, SluiceError):
                _log.error("model load failed", exc_info=exc, extra={"loader": self.name, "model": model_id})
                exc = Internal(f"{self.name}: loading model {model_id} raised {type(exc).__name__}: {exc}")
            self._fail(model_id, exc)
            fut.set_exception(exc)
            return
        del self._loading[model_id]
        self._failed.pop(model_id, None)
        self._loaded[model_id] = model
        self.loads += 1
        await self._evict()  # loads that ran side by side
        fut.set_result(model)
        self._changed()

    def _fail(self, model_id: str, exc: Exception) -> None:
        del self._loading[model_id]
        self.failures += 1
        self._failed[model_id] = (str(exc), time.monotonic())
        self._changed()

    async def _evict(self) -> None:
        """Evicts the least recently used models until at most capacity
        are loaded, counting those being loaded."""
        while self._loaded and len(self._loaded) + len(self._loading) > self.capacity:
            model_id, model = self._loaded.popitem(last=False)
            self.evictions += 1
            self._changed()
            await _unload(model, model_id)

    async def close(self) -> None:
        """Unloads every model."""
        while self._loaded:
            model_id, model = self._loaded.popitem(last=False)
            await _unload(model, model_id)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a load nobody waits for any more is not an unretrieved error


async def _unload(model: Any, model_id: str) -> None:
    hook = getattr(type(model), "__del__", None)
    if hook is None:
        return
    try:
        res = hook(model)
        if inspect.isawaitable(res):
            await res
    except Exception as exc:
        _log.warning("model unload raised", exc_info=exc, extra={"model": model_id})


@overload
def multiplexed(func: F, /) -> F: ...


@overload
def multiplexed(*, max_num_models_per_replica: int = DEFAULT_MAX_MODELS) -> Callable[[F], F]: ...


def multiplexed(
    func: F | None = None, /, *, max_num_models_per_replica: int = DEFAULT_MAX_MODELS
) -> F | Callable[[F], F]:
    """Decorates an async model loader, `async def get_model(self, model_id)`
    on a deployment class (one cache per instance, that is per replica) or
    `async def get_model(model_id)` (one cache per process). Call it as
    `await self.get_model(model_id)`, or with no argument for the
    request's model id."""
    if max_num_models_per_replica < 1:
        raise ValueError(f"max_num_models_per_replica: {max_num_models_per_replica} is not positive")

    def wrap(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@serve.multiplexed: {fn.__qualname__} is not an async function")
        params = list(inspect.signature(fn).parameters)
        if len(params) not in (1, 2):
            raise TypeError(f"@serve.multiplexed: {fn.__qualname__} takes (self, model_id) or (model_id)")
        method = len(params) == 2
        attr = f"_sluice_models_{fn.__name__}"
        shared: list[ModelCache] = []

        def cache_of(args: tuple[Any, ...]) -> ModelCache:
            if method:
                owner = args[0]
                c: ModelCache | None = owner.__dict__.get(attr)
                if c is None:
                    c = ModelCache(functools.partial(fn, owner), max_num_models_per_replica, fn.__qualname__)
                    setattr(owner, attr, c)
                return c
            if not shared:
                shared.append(ModelCache(fn, max_num_models_per_replica, fn.__qualname__))
            return shared[0]

        @functools.wraps(fn)
        async def load(*args: Any) -> Any:
            want = 2 if method else 1
            if len(args) == want - 1:
                args = (*args, get_multiplexed_model_id())
            elif len(args) != want:
                raise TypeError(f"{fn.__qualname__} takes {want} arguments, got {len(args)}")
            if args[-1] == "":
                raise InvalidArgument(
                    "the request names no model: send the serve_multiplexed_model_id header, "
                    "or call through handle.options(multiplexed_model_id=...)"
                )
            return await cache_of(args).get(args[-1])

        setattr(load, _CACHE_OF, (method, cache_of))
        return load  # type: ignore[return-value]

    return wrap(func) if func is not None else wrap


def model_cache(bound: Callable[..., Any]) -> ModelCache | None:
    """The cache behind a @serve.multiplexed method bound to an instance
    (self.get_model), once it has been called (or model_caches found it);
    None before."""
    owner = getattr(bound, "__self__", None)
    fn = getattr(bound, "__func__", bound)
    if owner is None:
        return None
    c = owner.__dict__.get(f"_sluice_models_{fn.__name__}")
    return c if isinstance(c, ModelCache) else None


def model_caches(deployment: Any) -> list[ModelCache]:
    """The caches a deployment's replica loads its models into, made now
    if not yet: those of the @serve.multiplexed methods of deployment (the
    instance of a deployment class), then those of the plain-function
    loaders of the module that defines its class (or it, a function)."""
    out: list[ModelCache] = []
    module_name = getattr(deployment if inspect.isfunction(deployment) else type(deployment), "__module__", "")
    if not inspect.isfunction(deployment):
        seen: set[str] = set()
        for klass in type(deployment).__mro__:
            for name, attr in vars(klass).items():
                got = getattr(attr, _CACHE_OF, None)
                if got is not None and got[0] and name not in seen:
                    seen.add(name)
                    out.append(got[1]((deployment,)))
    module = sys.modules.get(module_name)
    for attr in list(vars(module).values()) if module is not None else []:
        got = getattr(attr, _CACHE_OF, None)
        if got is not None and not got[0]:
            out.append(got[1](()))
    return out


def models_report(caches: list[ModelCache], app: str, deployment: str, replica: str,
                  partitions: dict[str, list[int]]) -> ModelsReport:  # fmt: skip
    """What caches hold and have done, as one replica's models report."""
    rep = ModelsReport(app=app, deployment=deployment, replica=replica, loaded=[], loading=[], failed={},
                       memory_bytes=0, hits=0, misses=0, loads=0, evictions=0, failures=0,
                       partitions=partitions, at=go_time(time.time_ns()))  # fmt: skip
    for c in caches:
        rep.loaded += c.loaded()
        rep.loading += c.loading()
        rep.failed.update(c.failed())
        rep.hits += c.hits
        rep.misses += c.misses
        rep.loads += c.loads
        rep.evictions += c.evictions
        rep.failures += c.failures
    return rep


def model_counts(caches: list[ModelCache]) -> ModelCounts:
    """The counts of caches' models report, summed, and how many models
    they hold: safe from any thread (it reads counters and lengths, while
    the loop may be loading or evicting)."""
    hits = misses = loads = evictions = failures = loaded = 0
    for c in caches:
        hits += c.hits
        misses += c.misses
        loads += c.loads
        evictions += c.evictions
        failures += c.failures
        loaded += c.held()
    return ModelCounts(hits, misses, loads, evictions, failures, loaded)
