"""``banter bench``'s options, and the plan of a run they make (standard library only)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONFIGS = ("one", "two", "split")
CEILINGS = ("models", "echo", "baseline")
MIN_TURNS = 8


def _floats(raw: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of numbers: {raw!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"rates must be positive: {raw!r}")
    return values


def _names(allowed: Sequence[str]) -> argparse._ActionType:
    def parse(raw: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in raw.split(",") if n.strip())
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
        return names

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="banter bench",
        description="Offer chat messages at fixed rates to real "
        "workers through Kafka; write reports/bench.{json,md,png}.",
    )
    load = p.add_argument_group("load")
    load.add_argument("--rates", type=_floats, default=(20.0, 50.0, 100.0, 150.0), help="offered msg/s, a comma list")
    load.add_argument("--duration", type=float, default=30.0, help="seconds of sending per rate")
    load.add_argument("--messages", type=int, default=None, help="messages per rate (instead of --duration)")
    load.add_argument("--conversations", type=int, default=None, help="conversations per rate (default: by --turns)")
    load.add_argument("--turns", type=int, default=12, help="turns per conversation when --conversations is not set")
    load.add_argument("--canned-share", type=float, default=0.3, help="share of canned-intent messages")
    load.add_argument("--drain", type=float, default=15.0, help="seconds to wait for the last replies")
    load.add_argument("--settle", type=float, default=30.0, help="seconds a phase's backlog may take to clear")
    load.add_argument("--warmup", type=float, default=0.2, help="share of each sending period left out of rates")
    load.add_argument("--seed", type=int, default=0)
    what = p.add_argument_group("what to run")
    what.add_argument("--configs", type=_names(CONFIGS), default=CONFIGS, help="one, two, split (comma list)")
    what.add_argument("--ceilings", type=_names(CEILINGS), default=CEILINGS, help="models, echo, baseline")
    what.add_argument("--skip-ceilings", action="store_true", help="no models, echo or baseline ceilings")
    what.add_argument("--overload-duration", type=float, default=60.0, help="seconds at 2x the highest sustained rate")
    what.add_argument("--overload-factor", type=float, default=2.0)
    what.add_argument("--no-overload", action="store_true")
    what.add_argument("--light-messages", type=int, default=20, help="canned messages at 1 msg/s (0: none)")
    what.add_argument(
        "--baseline-rate",
        type=float,
        default=None,
        help="offered msg/s of the unbatched worker (default: the most `one` was offered)",
    )
    what.add_argument("--baseline-duration", type=float, default=None, help="default: --duration")
    what.add_argument("--echo-duration", type=float, default=10.0, help="seconds per rate of the Kafka echo")
    what.add_argument("--echo-burst", type=int, default=2000, help="messages of the unpaced echo burst")
    what.add_argument("--batch", type=int, default=16, help="batch size of the in-process model ceiling")
    what.add_argument("--generator-batch", type=int, default=4, help="batch size of the in-process generator")
    where = p.add_argument_group("where")
    where.add_argument("--port", type=int, default=19292, help="local broker port (no BANTER_KAFKA_BOOTSTRAP)")
    where.add_argument("--web-port", type=int, default=6200, help="first web port for the workers")
    where.add_argument("--out", type=Path, default=Path("reports"), help="folder of bench.json, bench.md, bench.png")
    where.add_argument("--ready-timeout", type=float, default=300.0, help="seconds for workers to load and answer")
    where.add_argument("--keep-broker", action="store_true", help="leave a broker this run started running")
    return p


@dataclass(frozen=True)
class Plan:
    """A run's parameters (see ``parser()`` for each one's meaning)."""

    rates: tuple[float, ...]
    duration: float
    messages: int | None
    conversations: int | None
    turns: int
    canned_share: float
    drain: float
    settle: float
    warmup: float
    seed: int
    configs: tuple[str, ...]
    ceilings: tuple[str, ...]
    overload: bool
    overload_duration: float
    overload_factor: float
    light_messages: int
    baseline_rate: float | None
    baseline_duration: float
    echo_duration: float
    echo_burst: int
    batch: int
    generator_batch: int
    port: int
    web_port: int
    out: Path
    ready_timeout: float
    keep_broker: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        values = dict(vars(args))
        if values.pop("skip_ceilings"):
            values["ceilings"] = ()
        values["overload"] = not values.pop("no_overload")
        values["baseline_duration"] = values["baseline_duration"] or values["duration"]
        return cls(**values)

    def count(self, rate: float, seconds: float | None = None) -> int:
        """Messages of a phase at ``rate``: --messages for the sweep, else the rate times the seconds."""
        if self.messages and seconds is None:
            return self.messages
        return max(1, round(rate * (self.duration if seconds is None else seconds)))

    def conversations_for(self, count: int) -> int:
        """Conversations of a phase of ``count`` messages."""
        if self.conversations:
            return max(1, min(count, self.conversations))
        return max(1, count // max(1, self.turns))

    def warnings(self) -> list[str]:
        short = [r for r in self.rates if self.count(r) / self.conversations_for(self.count(r)) < MIN_TURNS]
        if not short:
            return []
        return [
            f"conversations at {', '.join(f'{r:g}' for r in short)} msg/s have fewer than {MIN_TURNS} turns: "
            "the router prefers the generator only from turn 6"
        ]


def plan(argv: Sequence[str]) -> Plan:
    """The plan of ``banter bench ARGV`` (exits with usage on a bad option, like any command)."""
    return Plan.from_args(parser().parse_args(list(argv)))
