"""The models this worker runs, loaded when it starts (built by ``streams.app``).

Each model gets its own single-thread executor, so inference never runs on the
event loop and a slow generator never queues the intent head behind it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mode import Service

from models import registry
from models.config import ModelConfig
from models.types import Model
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)
R = TypeVar("R")


def model_config(settings: Settings) -> ModelConfig:
    """The models' configuration, taken from banter's settings."""
    return ModelConfig(
        cache_dir=settings.home / "models",
        encoder=settings.encoder or None,
        precision="int8" if settings.precision == "int8" else "fp32",
        ort_threads=settings.ort_threads,
        blas_threads=settings.blas_threads,
        generator=settings.generator or None,
        generator_adapter=settings.generator_adapter or None,
        generator_max_new_tokens=settings.generator_max_new_tokens,
        generator_max_time_s=settings.generator_max_time_s,
        generator_threads=settings.generator_threads,
    )


class ModelService(Service):
    """Loads the named models on start and runs their batches off the event loop."""

    def __init__(self, settings: Settings, metrics: Metrics, names: Sequence[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.config = model_config(settings)
        self.metrics = metrics
        self.names = tuple(names)
        self.models: dict[str, Model[Any, Any]] = {}
        self._loaded = {name: asyncio.Event() for name in names}
        nice = {"generator": settings.generator_nice}
        self._executors = {
            name: ThreadPoolExecutor(
                1, thread_name_prefix=name, initializer=lower_priority, initargs=(nice.get(name, 0),)
            )
            for name in names
        }

    async def on_start(self) -> None:
        """Start loading every model, each on its own thread, and return at once: a fast model serves while a
        slow one loads, and the worker joins its group and restores its tables meanwhile (``model()`` waits)."""
        for name in self.names:
            self.add_future(self._load(name))

    async def _load(self, name: str) -> None:
        started = time.monotonic()
        try:
            model = await self.run(name, lambda: registry.load(name, self.config))
        except Exception as exc:  # a model that cannot load stops the worker, as before
            await self.crash(exc)
            return
        self.models[name] = model
        self._loaded[name].set()
        for part, version in getattr(model, "versions", {name: model.version}).items():
            self.metrics.model_info.labels(part).info({"version": version})  # intent and responder: one model each
        log.info(
            "model loaded",
            extra={"model": name, "version": model.version, "seconds": round(time.monotonic() - started, 2)},
        )

    async def on_stop(self) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)

    @property
    def loaded(self) -> bool:
        return all(event.is_set() for event in self._loaded.values())

    async def model(self, name: str) -> Model[Any, Any]:
        """The loaded model, once it is loaded."""
        await self._loaded[name].wait()
        return self.models[name]

    async def run(self, name: str, call: Callable[[], R]) -> R:
        """Run ``call`` (an inference) on the model's own executor thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executors[name], call)


def lower_priority(nice: int) -> None:
    """Make the calling thread ``nice`` (Linux: per thread). A model's executor thread runs this before it
    loads the model, so the threads its runtime starts then (CTranslate2's) inherit it: on a busy machine
    the generator gets the CPU the event loop and the understand step leave, instead of slowing them."""
    if nice > 0:
        try:
            me = threading.get_native_id()
            current = os.getpriority(os.PRIO_PROCESS, me)
            if min(19, nice) > current:  # never raise it (a worker started under `nice` stays below it)
                os.setpriority(os.PRIO_PROCESS, me, min(19, nice))
        except OSError as exc:
            log.warning("could not lower the thread's priority", extra={"nice": nice, "error": str(exc)})


def worker_models(settings: Settings) -> list[str]:
    """The models this worker's roles serve."""
    return [name for name in registry.SERVED if settings.runs(name)]
