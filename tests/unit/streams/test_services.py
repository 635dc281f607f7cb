"""The model service's executors: the generator's threads run at a lower OS priority."""

from __future__ import annotations

import os
import threading

from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.services import ModelService, lower_priority
from streams.settings import Settings


def _nice_of_a_thread_after(call) -> int:
    seen: list[int] = []

    def run() -> None:
        call()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0]


def test_lower_priority_changes_the_calling_thread_only() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert _nice_of_a_thread_after(lambda: lower_priority(7)) == max(before, 7)
    assert _nice_of_a_thread_after(lambda: lower_priority(40)) == 19  # capped at the lowest priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_the_generators_executor_is_nice_and_the_understand_steps_is_not() -> None:
    settings = Settings.from_env({"BANTER_GENERATOR_NICE": "12"})
    service = ModelService(settings, Metrics(CollectorRegistry()), ["understand", "generator"])
    base = os.getpriority(os.PRIO_PROCESS, 0)

    def nice_in(name: str) -> int:
        executor = service._executors[name]
        return executor.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()

    try:
        assert nice_in("generator") == max(base, 12)
        assert nice_in("understand") == base
    finally:
        for executor in service._executors.values():
            executor.shutdown()
