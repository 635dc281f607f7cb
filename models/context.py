"""Conversation state: turn count, age, and a window of recent history.

Plain dicts, so the state can live in any changelog-backed table. A message seen
before (a replay after a crash) gets back exactly the turn it got the first time.
``active_at`` is the last message or reply: a conversation idle for longer than the
configured time is forgotten (``idle``).
"""

from __future__ import annotations

from typing import Any

State = dict[str, Any]
REMEMBERED_TURNS = 8  # replays only reach back to the last commit (~1 s)
REMEMBERED_REPLIES = 32  # replies whose bot line was added: a repeat after a crash is not added again


def new_state(now: float) -> State:
    return {"turns": 0, "started_at": now, "active_at": now, "history": [], "recent": {}}


def user_turn(state: State, message_id: str, text: str, now: float, window: int) -> tuple[State, dict[str, Any]]:
    """Record a user message; returns the state and the turn's context fields.

    The context returned holds ``turn``, ``history`` (before this message) and
    ``conversation_age_s``; a replayed ``message_id`` returns its first context.
    """
    if message_id in state["recent"]:
        return state, state["recent"][message_id]
    context = {
        "turn": state["turns"] + 1,
        "history": list(state["history"][-window:]),
        "conversation_age_s": max(0.0, now - state["started_at"]),
    }
    state["turns"] += 1
    state["active_at"] = now
    state["history"] = [*state["history"], _item("user", text, message_id)][-window:]
    state["recent"][message_id] = context
    _forget_old(state["recent"])
    return state, context


def bot_turn(state: State, message_id: str, text: str, window: int, now: float | None = None) -> State:
    """Append the bot's reply to the history, once per message: a repeat of a reply (re-sent after a
    crash) is recognised even once the first one has left the window."""
    replied = state.setdefault("replied", [])
    if message_id in replied or any(i["speaker"] == "bot" and i["message_id"] == message_id for i in state["history"]):
        return state
    state["replied"] = [*replied, message_id][-REMEMBERED_REPLIES:]
    if now is not None:
        state["active_at"] = now
    state["history"] = [*state["history"], _item("bot", text, message_id)][-window:]
    return state


def _item(speaker: str, text: str, message_id: str) -> dict[str, str]:
    return {"speaker": speaker, "text": text, "message_id": message_id}


def _forget_old(recent: dict[str, Any]) -> None:
    while len(recent) > REMEMBERED_TURNS:
        recent.pop(next(iter(recent)))


def idle(state: State, now: float, idle_s: float) -> bool:
    """Whether the conversation saw no message or reply for longer than ``idle_s``."""
    return now - float(state.get("active_at") or state["started_at"]) > idle_s
