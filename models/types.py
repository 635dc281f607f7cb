"""The small model protocol and the typed inputs and outputs every model shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

Speaker = Literal["user", "bot"]

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out")


class Model(Protocol[In, Out]):
    """A loaded model: a name, a content-hash version, and batch prediction."""

    name: str
    version: str

    def predict(self, batch: Sequence[In]) -> list[Out]: ...


@dataclass(frozen=True, slots=True)
class IntentResult:
    """The intent head's answer for one utterance."""

    label: str
    confidence: float
    in_scope: bool


@dataclass(frozen=True, slots=True)
class Proposal:
    """A reply text a model proposes, with the model's own score (the router makes each a ``schemas.Candidate``).

    ``truncated``: the generator hit a cap before the reply's end. ``quality``: the
    selector's estimate that the reply makes sense here (``models.selector``).
    """

    text: str
    score: float
    truncated: bool = False
    quality: float | None = None


@dataclass(frozen=True, slots=True)
class Utterance:
    """One turn of a conversation."""

    speaker: Speaker
    text: str


@dataclass(frozen=True, slots=True)
class Dialogue:
    """What the responder and generator see: the history, ending with the user's text."""

    history: tuple[Utterance, ...]
    intent: str | None = None
    seed: int = 0
    options: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.history[-1].text if self.history else ""
