"""Conversation state: turn numbers, history window, replays and bot turns."""

from __future__ import annotations

from models import context


def test_turns_count_and_history_grows_in_order() -> None:
    state = context.new_state(0.0)
    state, first = context.user_turn(state, "m1", "hi", 1.0, window=8)
    state = context.bot_turn(state, "m1", "hey you", window=8)
    state, second = context.user_turn(state, "m2", "how are you", 5.0, window=8)
    assert (first["turn"], second["turn"]) == (1, 2)
    assert [i["text"] for i in second["history"]] == ["hi", "hey you"]
    assert second["conversation_age_s"] == 5.0


def test_a_replayed_message_gets_its_first_context() -> None:
    state = context.new_state(0.0)
    state, first = context.user_turn(state, "m1", "hi", 1.0, window=8)
    state, _ = context.user_turn(state, "m2", "again", 2.0, window=8)
    state, replay = context.user_turn(state, "m1", "hi", 9.0, window=8)
    assert replay == first
    assert state["turns"] == 2


def test_window_bounds_history() -> None:
    state = context.new_state(0.0)
    for i in range(30):
        state, ctx = context.user_turn(state, f"m{i}", f"t{i}", float(i), window=4)
    assert len(ctx["history"]) == 4
    assert len(state["history"]) == 4


def test_bot_turn_recorded_once() -> None:
    state = context.new_state(0.0)
    state = context.bot_turn(state, "m1", "yo", window=8)
    state = context.bot_turn(state, "m1", "yo", window=8)
    assert len(state["history"]) == 1


def test_a_conversation_is_idle_only_after_the_idle_time_since_its_last_message_or_reply() -> None:
    state = context.new_state(100.0)
    state, _ = context.user_turn(state, "m1", "hi", 150.0, 8)
    assert not context.idle(state, 200.0, 60.0)
    assert context.idle(state, 211.0, 60.0)
    context.bot_turn(state, "m1", "hey you", 8, now=205.0)
    assert not context.idle(state, 211.0, 60.0)


def test_a_reply_repeated_after_its_line_left_the_window_is_not_added_again() -> None:
    state = context.new_state(0.0)
    state, _ = context.user_turn(state, "m1", "hi", 1.0, 2)
    context.bot_turn(state, "m1", "hey", 2)
    for i in range(2, 5):  # the window of 2 moves on past m1's bot line
        state, _ = context.user_turn(state, f"m{i}", "more", float(i), 2)
    context.bot_turn(state, "m1", "hey", 2)  # the same reply, re-sent after a crash
    assert [item["message_id"] for item in state["history"]] == ["m3", "m4"]
