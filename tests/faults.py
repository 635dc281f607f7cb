"""``python -m tests.faults worker``: a banter worker whose generator is slowed or broken on purpose.

The integration tests (and ``benchmarks/routing.py``) run it to prove what the router does
when the generator is late or raises, without test knobs in the production settings:

* ``FAULT_GENERATOR_DELAY_MS``: extra wall time per generator batch;
* ``FAULT_GENERATOR_RAISE=1``: every generator batch raises.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from models import registry

DELAY_MS = "FAULT_GENERATOR_DELAY_MS"
RAISE = "FAULT_GENERATOR_RAISE"


class Faulty:
    """A model that sleeps, or raises, before it predicts; everything else is the model's own."""

    def __init__(self, model: Any, delay_s: float, raises: bool) -> None:
        self._model, self._delay_s, self._raises = model, delay_s, raises

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def predict(self, batch: Sequence[Any]) -> Any:
        time.sleep(self._delay_s)
        if self._raises:
            raise RuntimeError(f"injected generator fault ({RAISE}=1)")
        return self._model.predict(batch)


def install(environ: dict[str, str]) -> None:
    """Wrap the generator that ``models.registry.load`` returns, as ``environ`` asks."""
    delay_s = float(environ.get(DELAY_MS, "0")) / 1000
    raises = environ.get(RAISE, "") not in ("", "0")
    if not delay_s and not raises:
        return
    load = registry.load

    def faulty_load(name: str, config: Any) -> Any:
        model = load(name, config)
        return Faulty(model, delay_s, raises) if name == "generator" else model

    registry.load = faulty_load  # type: ignore[assignment]


if __name__ == "__main__":
    install(dict(os.environ))
    from streams.cli import main

    sys.exit(main(sys.argv[1:]))
