from streams.gaps import missed


def test_nothing_is_missed_when_offsets_follow_on() -> None:
    assert list(missed(41, 42)) == []


def test_a_jump_misses_the_offsets_between() -> None:
    assert list(missed(41, 45)) == [42, 43, 44]


def test_a_replay_misses_nothing() -> None:
    assert list(missed(41, 30)) == [] and list(missed(41, 41)) == []


def test_with_no_mark_yet_nothing_can_be_missed() -> None:
    assert list(missed(None, 1000)) == []
