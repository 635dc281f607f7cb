"""The command: parse the options, run, and write the reports whatever happened."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence

from benchmarks.bench import options, targets
from benchmarks.bench.report import markdown, write_json
from benchmarks.bench.results import BenchResult
from benchmarks.bench.run import PLATFORM, run
from streams.settings import Settings

STARTED = time.monotonic()


def progress(line: str) -> None:
    """One line on the terminal, with the seconds since the start."""
    print(f"bench {time.monotonic() - STARTED:6.0f}s  {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    plan = options.plan(args)
    environ = dict(os.environ)  # the workers' whole environment, as `banter worker` would get it
    for warning in plan.warnings():
        progress(f"warning: {warning}")
    signal.signal(signal.SIGTERM, _interrupt)  # stop the workers and the broker as on Ctrl-C
    (plan.out / "bench-logs").mkdir(parents=True, exist_ok=True)
    result = BenchResult(
        command=shlex.join(["banter", "bench", *args]),
        cores=os.cpu_count() or 1,
        budget_ms=Settings.from_env(environ).budget_for(PLATFORM),
    )
    try:
        run(plan, environ, result, progress)
    finally:
        write(result, plan)
    failed = [c for c in result.configs if c.error]
    return 1 if failed else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def write(result: BenchResult, plan: options.Plan) -> None:
    """bench.json, bench.md and bench.png under the plan's folder; the targets on the terminal."""
    result.checks = targets.checks(result)
    write_json(result, plan.out / "bench.json")
    text = markdown(result)
    (plan.out / "bench.md").write_text(text)
    try:
        from benchmarks.bench.plot import write_png

        write_png(result, plan.out / "bench.png")
    except ImportError as exc:  # matplotlib is in the dev extra; the tables stand without the plot
        progress(f"no plot ({exc}); pip install matplotlib")
    for check in result.checks:
        verdict = {True: "pass", False: "FAIL", None: "n/a"}[check.passed]
        progress(f"[{verdict}] {check.target}: {check.figure}")
    progress(f"reports: {plan.out / 'bench.md'}, {plan.out / 'bench.json'}, {plan.out / 'bench.png'}")
