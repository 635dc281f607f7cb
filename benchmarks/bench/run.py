"""A whole run: ceilings, then each configuration's light load, sweep and overload, then the baseline."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Sequence

from benchmarks.bench import ceilings, echo, workload
from benchmarks.bench.cluster import Deployment, Ports, WorkerSpec, broker, configurations
from benchmarks.bench.load import Phase
from benchmarks.bench.monitor import Sampler, settle
from benchmarks.bench.options import Plan
from benchmarks.bench.results import BenchResult, ConfigResult
from benchmarks.bench.summary import Health, PhaseSummary, summarise
from streams.settings import Settings

Progress = Callable[[str], None]
PLATFORM = "bench"
LIGHT_RATE = 1.0
MODEL_SAMPLE = 256


def run(plan: Plan, environ: dict[str, str], result: BenchResult, progress: Progress) -> None:
    """Measure everything the plan asks for into ``result`` (filled as it goes, so a failure keeps the rest)."""
    logs = plan.out / "bench-logs"
    if "models" in plan.ceilings:
        messages = workload.plan(MODEL_SAMPLE, MODEL_SAMPLE // 12, plan.canned_share, plan.seed)
        result.models = ceilings.measure(
            Settings.from_env(environ), messages, plan.batch, plan.generator_batch, progress
        )
    if not (plan.configs or {"echo", "baseline"} & set(plan.ceilings)):
        return
    with broker(environ, plan.port, progress, plan.keep_broker) as env:
        if "echo" in plan.ceilings:
            settings = Settings.from_env({**env, "BANTER_TOPIC_PREFIX": f"bench-echo-{uuid.uuid4().hex[:6]}"})
            result.echo = asyncio.run(
                echo.run(settings, plan.rates, plan.echo_duration, plan.echo_burst, plan.warmup, progress)
            )
        ports = Ports(plan.web_port)
        roles = configurations(progress) if plan.configs else {}
        for name in plan.configs:
            result.configs.append(configuration(Deployment(name, roles[name], env, logs), plan, ports, progress))
        if "baseline" in plan.ceilings:
            naive = Deployment("naive", (WorkerSpec("all"),), env, logs, extra={"BANTER_MAX_BATCH": "1"})
            result.baseline = baseline(naive, plan, _baseline_rate(plan, result), ports, progress)


def configuration(deployment: Deployment, plan: Plan, ports: Ports, progress: Progress) -> ConfigResult:
    """Light load, the sweep, then the overload, on one deployment; its workers always stopped."""
    config = ConfigResult(deployment.name, [spec.describe() for spec in deployment.specs])
    try:
        deployment.start(ports, progress, plan.ready_timeout)
        if plan.light_messages > 0:
            config.light = phase(deployment, plan, "light", workload.light(plan.light_messages), LIGHT_RATE, progress)
            deployment.check_alive()
        for i, rate in enumerate(plan.rates):
            config.sweep.append(phase(deployment, plan, f"{rate:g}/s", _messages(plan, rate, None, i), rate, progress))
            deployment.check_alive()
        rate = overload_rate(config, plan.overload_factor)
        if plan.overload and not math.isnan(rate):
            messages = _messages(plan, rate, plan.overload_duration, len(plan.rates))
            config.overload = phase(deployment, plan, "overload", messages, rate, progress)
            deployment.check_alive()
    except Exception as exc:  # one configuration failing leaves the others and the reports
        progress(f"{deployment.name}: failed: {exc}")
        config.error = f"{type(exc).__name__}: {exc}"
    finally:
        deployment.stop()
    return config


def baseline(deployment: Deployment, plan: Plan, rate: float, ports: Ports, progress: Progress) -> PhaseSummary | None:
    """The unbatched worker at ``rate``: its model-answered replies/s is the baseline."""
    try:
        deployment.start(ports, progress, plan.ready_timeout)
        messages = _messages(plan, rate, plan.baseline_duration, 99)
        summary = phase(deployment, plan, f"{rate:g}/s", messages, rate, progress)
        deployment.check_alive()
        return summary
    except Exception as exc:
        progress(f"baseline failed: {exc}")
        return None
    finally:
        deployment.stop()


def phase(
    deployment: Deployment,
    plan: Plan,
    label: str,
    messages: Sequence[workload.Planned],
    rate: float,
    progress: Progress,
) -> PhaseSummary:
    """Offer ``messages`` at ``rate`` to the deployment, drain, and sum it up."""

    async def go() -> tuple[Phase, Health]:
        async with (
            Sampler(deployment.probes()) as sampler,
            Phase(deployment.settings, f"{deployment.name} {label}", progress) as load,
        ):
            progress(f"{deployment.name} {label}: {len(messages)} messages at {rate:g}/s")
            await load.offer(messages, rate)
            await load.drain(plan.drain)
            dead = load.dead_letters
        return load, Health(dead, sampler.rss_max_bytes, sampler.loop_lag_max_s)

    load, health = asyncio.run(go())
    progress(load.status())
    left = settle(deployment.probes(), plan.settle)
    if left:
        progress(f"{deployment.name}: {left} records still unread by the workers after {plan.settle:g} s")
    budget = deployment.settings.budget_for(PLATFORM)
    return summarise(load.record, deployment.name, label, rate, budget, plan.warmup, health)


def overload_rate(config: ConfigResult, factor: float) -> float:
    """``factor`` x the highest sustained rate; with none sustained, x the best model-answered replies/s."""
    best = config.highest_sustained()
    return round(factor * (best.offered_rps if best else config.capacity()), 1)


def _baseline_rate(plan: Plan, result: BenchResult) -> float:
    """--baseline-rate, else the most `one` was offered (the sweep's top or the overload)."""
    if plan.baseline_rate:
        return plan.baseline_rate
    one = result.config("one")
    return max((*plan.rates, *((one.overload.offered_rps,) if one and one.overload else ())))


def _messages(plan: Plan, rate: float, seconds: float | None, salt: int) -> list[workload.Planned]:
    count = plan.count(rate, seconds)
    return workload.plan(count, plan.conversations_for(count), plan.canned_share, plan.seed * 1000 + salt)
