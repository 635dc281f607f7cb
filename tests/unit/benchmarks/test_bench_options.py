"""``banter bench``'s options and the plan they make; the command's registration in the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench.options import CEILINGS, CONFIGS, plan
from streams import cli


def test_defaults() -> None:
    got = plan([])
    assert got.rates == (20.0, 50.0, 100.0, 150.0) and got.configs == CONFIGS and got.ceilings == CEILINGS
    assert (got.port, got.web_port, got.out) == (19292, 6200, Path("reports"))
    assert got.overload and got.baseline_duration == got.duration
    assert got.count(50.0) == 1500 and got.conversations_for(1500) == 125
    assert got.warnings() == []


def test_a_short_run() -> None:
    got = plan(
        [
            "--rates",
            "10,30",
            "--duration",
            "20",
            "--configs",
            "one",
            "--overload-duration",
            "20",
            "--skip-ceilings",
            "--no-overload",
            "--port",
            "19999",
        ]
    )
    assert got.rates == (10.0, 30.0) and got.configs == ("one",) and got.ceilings == ()
    assert not got.overload and got.port == 19999
    assert got.count(30.0) == 600 and got.count(30.0, seconds=2) == 60


def test_messages_and_conversations() -> None:
    got = plan(["--messages", "200", "--conversations", "40"])
    assert got.count(150.0) == 200 and got.count(10.0, seconds=3) == 30
    assert got.conversations_for(200) == 40 and got.conversations_for(10) == 10
    assert "fewer than 8 turns" in got.warnings()[0]


@pytest.mark.parametrize("argv", [["--rates", "10,x"], ["--rates", "0"], ["--configs", "three"], ["--ceilings", "gpu"]])
def test_bad_options_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        plan(argv)


def test_banter_bench_hands_every_option_to_the_benchmark() -> None:
    args = cli._parser().parse_args(["bench", "--rates", "10,30", "-h", "--configs=one"])
    assert args.options == ["--rates", "10,30", "-h", "--configs=one"]
    assert args.run is cli._bench
