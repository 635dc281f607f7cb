"""Multi-turn evaluation of banter's replies, and the data the response selector is fitted on.

``evaluate`` replays the held-out conversations (``models/data/eval_dialogues.json``:
project-written user turns, never used for training or fitting) through the same
models and the same routing policy the router runs, in-process: each user turn gets
the understand step (intent and retrieval), the generator, the selector's quality for
each candidate, and ``policy.decide``; the chosen reply enters the history of the next
turn. It reports, per source and for the chosen reply: relevance to the message and to
the context, distinct-1/2, repetition and echo rates, length, the generator's share and
the mean selection latency, and a sample of turns side by side.

The selector's fitting data (the turns of ``models/data/selector_dialogues.json``, a
different set of conversations) is ``models.build.selector_fitting``.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from models import policy, selector
from models.dataset import DATA_DIR, read_json
from models.types import Dialogue, Proposal, Utterance

EVAL_FILE = DATA_DIR / "eval_dialogues.json"
SOURCES = ("canned", "retrieval", "generative", "fallback")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TurnResult:
    """One user turn of a replayed conversation: every candidate, and the choice."""

    conversation: str
    turn: int
    history: tuple[Utterance, ...]
    intent: str | None
    intent_confidence: float
    retrieval: Proposal
    generated: Proposal | None
    decision: policy.Decision
    select_ms: float
    top_retrieval: Proposal | None = None  # the responder's own best, before the selector weighed the options

    @property
    def message(self) -> str:
        return self.history[-1].text


@dataclass
class Bot:
    """The router's choice, in-process: understand, generate, score, decide."""

    understander: Any
    generator: Any | None
    scorer: selector.Selector
    config: policy.PolicyConfig = field(default_factory=policy.PolicyConfig)

    def respond(
        self, conversations: Sequence[str], histories: Sequence[tuple[Utterance, ...]], turns: Sequence[int]
    ) -> list[TurnResult]:
        """One reply per history (each ending with a user turn), the batch run as the agents would."""
        dialogues = [
            Dialogue(h, seed=policy.seed_of(f"{c}:{t}"))
            for c, h, t in zip(conversations, histories, turns, strict=True)
        ]
        understood = self.understander.predict(dialogues)
        tops = [found[0][0] for found in self.understander.options(dialogues)[1]]
        replies = [u.reply for u in understood]
        if any(r.quality is None for r in replies):
            replies = self.scorer.assess(dialogues, replies, "retrieval")
        generated = self.generator.predict(dialogues) if self.generator is not None else [None] * len(dialogues)
        out = []
        for i, dialogue in enumerate(dialogues):
            outputs = _seen(understood[i].intent, replies[i], generated[i])
            situation = policy.Situation(dialogue.text, turns[i], tuple(selector.recent_bot(dialogue)), dialogue.seed)
            started = time.perf_counter()
            decision = policy.decide(situation, outputs, self.config, final=True)
            select_ms = (time.perf_counter() - started) * 1000
            assert decision is not None  # final decisions always answer
            out.append(
                TurnResult(
                    conversations[i],
                    turns[i],
                    dialogue.history,
                    understood[i].intent.label,
                    float(understood[i].intent.confidence),
                    replies[i],
                    generated[i],
                    decision,
                    select_ms,
                    tops[i],
                )
            )
        return out


def _seen(intent: Any, reply: Proposal, generated: Proposal | None) -> dict[str, policy.Seen]:
    seen = {
        "intent": policy.Seen(
            "intent", "ok", label=intent.label, confidence=intent.confidence, in_scope=intent.in_scope
        ),
        "responder": policy.Seen("responder", "ok", text=reply.text, score=reply.score, quality=reply.quality),
    }
    if generated is not None:
        seen["generator"] = policy.Seen(
            "generator", "ok", text=generated.text, score=generated.score, quality=generated.quality
        )
    else:
        seen["generator"] = policy.Seen("generator", "skipped", reason="disabled")
    return seen


def eval_conversations(path: Path = EVAL_FILE) -> list[tuple[str, list[str]]]:
    """(id, user turns) of the held-out conversations."""
    data = read_json(path)
    return [(c["id"], list(c["user_turns"])) for c in data["conversations"]]


def replay(bot: Bot, conversations: Sequence[tuple[str, list[str]]], progress: Progress) -> list[TurnResult]:
    """Every conversation turn by turn, all conversations' k-th turns in one batch."""
    histories: dict[str, tuple[Utterance, ...]] = {cid: () for cid, _ in conversations}
    results: list[TurnResult] = []
    longest = max((len(turns) for _, turns in conversations), default=0)
    for k in range(longest):
        live = [(cid, turns[k]) for cid, turns in conversations if k < len(turns)]
        progress(f"eval-dialogue: turn {k + 1}/{longest} of {len(live)} conversations")
        asked = [(*histories[cid], Utterance("user", text)) for cid, text in live]
        for result in bot.respond([cid for cid, _ in live], asked, [k + 1] * len(live)):
            results.append(result)
            histories[result.conversation] = (*result.history, Utterance("bot", result.decision.text))
    return results


def _distinct(texts: Iterable[str], n: int) -> float:
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = selector.words(text)
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def measure(encoder: selector.Encoder, items: Sequence[tuple[Dialogue, str]]) -> dict[str, float]:
    """Relevance, distinct-n, repetition, echo and length of replies given their dialogues."""
    if not items:
        return {}
    rows = selector.feature_rows(
        encoder, [d for d, _ in items], [Proposal(t, 0.0) for _, t in items], ["retrieval"] * len(items)
    )
    col = {name: rows[:, i] for i, name in enumerate(selector.FEATURES)}
    texts = [t for _, t in items]
    return {
        "n": len(items),
        "relevance_message": round(float(np.mean(col["rel_msg"])), 3),
        "relevance_context": round(float(np.mean(col["rel_ctx"])), 3),
        "distinct_1": round(_distinct(texts, 1), 3),
        "distinct_2": round(_distinct(texts, 2), 3),
        "repetition_rate": round(float(np.mean(col["repeat"] >= 0.8)), 3),
        "echo_rate": round(float(np.mean(col["echo"] >= 0.5)), 3),
        "mean_words": round(statistics.fmean(len(selector.words(t)) for t in texts), 1),
        "empty": sum(1 for t in texts if not t.strip()),
        "unsafe": sum(1 for t in texts if selector.unsafe(t)),
    }


def report(results: Sequence[TurnResult], encoder: selector.Encoder, sample: int = 20) -> dict[str, Any]:
    """The eval-dialogue report: metrics per candidate source and for the chosen replies, and a sample."""

    def item(r: TurnResult, text: str) -> tuple[Dialogue, str]:
        return Dialogue(r.history), text

    chosen = [item(r, r.decision.text) for r in results]
    per_source = {
        "retrieval (candidate)": measure(encoder, [item(r, r.retrieval.text) for r in results]),
        "generator (candidate)": measure(encoder, [item(r, r.generated.text) for r in results if r.generated]),
        "chosen": measure(encoder, chosen),
    }
    sources = {s: sum(1 for r in results if r.decision.source == s) for s in SOURCES}
    picked = random.Random(0).sample(list(results), min(sample, len(results)))
    return {
        "n_turns": len(results),
        "conversations": len({r.conversation for r in results}),
        "metrics": per_source,
        "chosen_sources": sources,
        "generator_share": round(sources["generative"] / max(1, len(results)), 3),
        "mean_select_ms": round(statistics.fmean(r.select_ms for r in results), 4) if results else 0.0,
        "generated_quality_mean": _mean(r.generated.quality for r in results if r.generated),
        "retrieval_quality_mean": _mean(r.retrieval.quality for r in results),
        "sample": [_sample_row(r) for r in sorted(picked, key=lambda r: (r.conversation, r.turn))],
        "turns": [_turn_row(r) for r in results],
    }


def _turn_row(r: TurnResult) -> dict[str, Any]:
    """Everything a rater needs of one turn: the context, each candidate, the choice."""
    return {
        "conversation": r.conversation,
        "turn": r.turn,
        "context": [[u.speaker, u.text] for u in r.history[-5:]],
        "intent": r.intent,
        "intent_confidence": round(r.intent_confidence, 3),
        "candidates": {
            "retrieval": r.retrieval.text,
            "generator": r.generated.text if r.generated else None,
            "top_retrieval": r.top_retrieval.text if r.top_retrieval else r.retrieval.text,
            "chosen": r.decision.text,
        },
        "quality": {"retrieval": r.retrieval.quality, "generator": r.generated.quality if r.generated else None},
        "source": r.decision.source,
    }


RULE_LONG_TURNS = 6
RULE_UNCERTAIN = 0.55


def rule_choice(row: dict[str, Any]) -> str:
    """Which candidate the routing rule before the selector took: the generator from the 6th turn
    on and for uncertain or out-of-scope intents, the responder's own best otherwise (canned stays canned)."""
    if row["source"] in {"canned", "fallback"}:
        return "chosen"
    generator_first = (
        row["turn"] >= RULE_LONG_TURNS or row["intent"] in {None, "oos"} or row["intent_confidence"] < RULE_UNCERTAIN
    )
    return "generator" if generator_first and row["candidates"]["generator"] else "top_retrieval"


def ssa(turns: Sequence[dict[str, Any]], ratings: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Sensibleness, specificity and SSA (their mean) of each way of choosing, from ratings keyed
    ``conversation:turn:candidate`` (candidate: retrieval, generator or chosen) with 0/1 ``sensible``
    and ``specific`` (a reply that is not sensible is not specific)."""
    ways: dict[str, Callable[[dict[str, Any]], str]] = {
        "selector (chosen)": lambda row: "chosen",
        "rule before the selector": rule_choice,
        "responder's best only": lambda row: "chosen" if row["source"] == "canned" else "top_retrieval",
        "understand step only (no generator)": lambda row: "chosen" if row["source"] == "canned" else "retrieval",
        "generator only": lambda row: "chosen" if row["source"] == "canned" else "generator",
    }
    out: dict[str, dict[str, float]] = {}
    for name, way in ways.items():
        rated = [ratings.get(_rating_key(row, way(row))) for row in turns]
        kept = [r for r in rated if r is not None]
        if not kept:
            continue
        sensible = statistics.fmean(r["sensible"] for r in kept)
        specific = statistics.fmean(r["sensible"] * r["specific"] for r in kept)
        out[name] = {
            "rated": len(kept),
            "sensible": round(sensible, 3),
            "specific": round(specific, 3),
            "ssa": round((sensible + specific) / 2, 3),
        }
    return out


def _rating_key(row: dict[str, Any], candidate: str) -> str:
    """Ratings are per text: a candidate with the same text as another shares its rating."""
    text = row["candidates"].get(candidate)
    for name in RATED:
        if row["candidates"].get(name) == text:
            return f"{row['conversation']}:{row['turn']}:{name}"
    return f"{row['conversation']}:{row['turn']}:{candidate}"


RATED = ("retrieval", "top_retrieval", "generator", "chosen")
"""The order in which a turn's distinct texts are rated (a canned reply is rated as ``chosen``)."""


def rating_rows(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per distinct text of each turn, keyed as ``ssa`` reads the ratings."""
    items = []
    for row in turns:
        seen: set[str] = set()
        for name in RATED:
            text = row["candidates"].get(name)
            if text and text not in seen:
                seen.add(text)
                items.append(
                    {"key": f"{row['conversation']}:{row['turn']}:{name}", "context": row["context"], "reply": text}
                )
    return items


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.fmean(kept), 3) if kept else None


def _sample_row(r: TurnResult) -> dict[str, Any]:
    return {
        "conversation": r.conversation,
        "turn": r.turn,
        "message": r.message,
        "intent": f"{r.intent} ({r.intent_confidence:.2f})",
        "retrieval": f"{r.retrieval.text} [q={_q(r.retrieval)}]",
        "generator": f"{r.generated.text} [q={_q(r.generated)}]" if r.generated else "(off)",
        "chosen": r.decision.source,
        "why": r.decision.why,
    }


def _q(c: Proposal) -> str:
    return "-" if c.quality is None else f"{c.quality:.2f}"


def markdown(rep: dict[str, Any]) -> str:
    """The report as markdown."""
    lines = [f"# banter eval-dialogue: {rep['conversations']} held-out conversations, {rep['n_turns']} turns", ""]
    keys = [
        "n",
        "relevance_message",
        "relevance_context",
        "distinct_1",
        "distinct_2",
        "repetition_rate",
        "echo_rate",
        "mean_words",
        "empty",
        "unsafe",
    ]
    lines += ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in rep["metrics"].items():
        lines.append(f"| {name} | " + " | ".join(str(m.get(k, "")) for k in keys) + " |")
    lines += [
        "",
        "Chosen sources: " + ", ".join(f"{k} {v}" for k, v in rep["chosen_sources"].items()),
        f"Generator share: {rep['generator_share']:.1%}; mean selection latency {rep['mean_select_ms']} ms; "
        f"mean quality: retrieval {rep['retrieval_quality_mean']}, generator {rep['generated_quality_mean']}",
        "",
    ]
    if rep.get("ssa"):
        lines += [
            "## Rated turn by turn (sensibleness, specificity, SSA)",
            "",
            "| choice | rated | sensible | specific | SSA |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {v['rated']} | {v['sensible']:.1%} | {v['specific']:.1%} | {v['ssa']:.1%} |"
            for name, v in rep["ssa"].items()
        ]
        lines.append("")
    lines += [
        "## Sample turns",
        "",
        "| conv | turn | message | intent | retrieval | generator | chosen | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rep["sample"]:
        cells = [
            str(row[k]).replace("|", "/")
            for k in ("conversation", "turn", "message", "intent", "retrieval", "generator", "chosen", "why")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def without_generator(bot: Bot) -> Bot:
    """The same bot with retrieval and canned replies only (a baseline)."""
    return replace(bot, generator=None)
