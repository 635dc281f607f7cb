"""``banter bench``: the pipeline under offered load, as a platform sees it.

A real producer offers chat messages at fixed rates (open loop) to real workers
through Kafka, in three configurations (one worker, two workers, a generator
worker beside one running everything else); a consumer of ``banter.replies``
measures throughput, end-to-end latency and reply sources. Ceilings from the
same run put the figures in context: the models in-process, Kafka alone, and a
worker with unbatched inference. Writes ``reports/bench.json``, ``bench.md``
and ``bench.png`` and checks the throughput issue's targets.

    banter bench [--rates 20,50,100,150] [--duration 30] [--configs one,two,split] [--skip-ceilings]
    python -m benchmarks.bench ...   (the same)
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``banter bench`` with ``argv`` (default: the process's arguments)."""
    from benchmarks.bench.command import main as command

    return command(argv)
