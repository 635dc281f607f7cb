"""Catch-up: input records faust committed without handing them to an agent → that agent.

The stream check in ``streams.gaps`` finds a skipped record when the next one
arrives; this timer finds those with nothing after them: after a restart, a
partition whose committed offset is past an agent's last record. A second timer
saves the agents' progress marks to the changelog.
"""

from __future__ import annotations

import logging

from aiokafka.errors import KafkaError

from streams import gaps
from streams.app import app

log = logging.getLogger(__name__)
INTERVAL_S = 5.0


@app.timer(interval=INTERVAL_S)
async def catch_up_skipped_inputs() -> None:
    """Compare each agent's last input offsets with the group's committed offsets."""
    if app.rebalancing or app.in_recovery or not gaps.INPUTS:
        return
    ours = set().union(*(inputs.topics for inputs in gaps.INPUTS))
    assigned = [tp for tp in app.consumer.assignment() if tp.topic in ours]
    try:
        committed = await gaps.committed_offsets.of(assigned)
    except KafkaError as exc:  # the broker may be moving a coordinator: the next tick asks again
        log.warning("could not read committed offsets", extra={"error": repr(exc), "retry_s": INTERVAL_S})
        return
    for inputs in gaps.INPUTS:
        await inputs.catch_up(committed)


@app.timer(interval=gaps.FLUSH_INTERVAL_S)
async def save_progress_marks() -> None:
    """Each agent's last input offsets to the changelog: one write per partition, not per record."""
    gaps.save_marks()
