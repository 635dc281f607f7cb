"""What a benchmark run found: per configuration, the ceilings, and the whole run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmarks.bench.stats import Latency
from benchmarks.bench.summary import PhaseSummary


@dataclass
class ConfigResult:
    """One configuration of workers: its sweep, its overload and light phases, or its error."""

    name: str
    workers: list[str]
    sweep: list[PhaseSummary] = field(default_factory=list)
    overload: PhaseSummary | None = None
    light: PhaseSummary | None = None
    error: str | None = None

    @property
    def phases(self) -> list[PhaseSummary]:
        extra = [p for p in (self.light, self.overload) if p is not None]
        return [*self.sweep, *extra]

    def highest_sustained(self) -> PhaseSummary | None:
        """The sweep's highest offered rate that was sustained."""
        held = [p for p in self.sweep if p.sustained]
        return max(held, key=lambda p: p.offered_rps) if held else None

    def capacity_phase(self) -> PhaseSummary | None:
        """The phase of the sweep or the overload with the most model-answered replies/s."""
        phases = [p for p in (*self.sweep, self.overload) if p is not None and not math.isnan(p.model_rps)]
        return max(phases, key=lambda p: p.model_rps) if phases else None

    def capacity(self) -> float:
        """The most model-answered replies/s seen in the sweep or the overload."""
        best = self.capacity_phase()
        return best.model_rps if best else math.nan

    def rss_max_bytes(self) -> int:
        return max((p.health.rss_max_bytes for p in self.phases), default=0)


@dataclass(frozen=True)
class EchoSummary:
    """Kafka alone: a tiny record produced and consumed back, no models."""

    offered_rps: float
    sent: int
    received: int
    throughput_rps: float
    latency_ms: Latency


@dataclass(frozen=True)
class ModelCeilings:
    """Messages/s of the models in this process, no Kafka (None: not measured)."""

    batch: int
    encoder_mps: float | None = None
    nongen_mps: float | None = None
    nongen_shared_mps: float | None = None
    generator_mps: float | None = None
    generator_batch: int = 0
    error: str | None = None

    def best_nongen(self) -> float | None:
        """The non-generative path's ceiling: the faster of encoding per model and encoding once."""
        found = [m for m in (self.nongen_mps, self.nongen_shared_mps) if m is not None]
        return max(found) if found else None


@dataclass(frozen=True)
class Check:
    """One target of the issue: the measured figure and pass/fail (None: not measured)."""

    target: str
    figure: str
    passed: bool | None


@dataclass
class BenchResult:
    """Everything one ``banter bench`` run measured."""

    command: str
    budget_ms: float
    cores: int
    configs: list[ConfigResult] = field(default_factory=list)
    models: ModelCeilings | None = None
    echo: list[EchoSummary] = field(default_factory=list)
    baseline: PhaseSummary | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def config(self, name: str) -> ConfigResult | None:
        """The configuration ``name`` if it ran (its phases so far, if it failed)."""
        return next((c for c in self.configs if c.name == name), None)
