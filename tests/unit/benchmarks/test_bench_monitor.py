"""Reading a worker's metrics page and its process group's memory."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.bench.monitor import LOOP_LAG, _proc_group_rss, group_rss_bytes, metric_max, metric_values

PAGE = """# HELP banter_event_loop_lag_seconds How late the loop woke
# TYPE banter_event_loop_lag_seconds gauge
banter_event_loop_lag_seconds 0.0125
banter_event_loop_lag_seconds_other 9.0
banter_model_latency_seconds_bucket{model="intent",le="0.005"} 3.0
banter_model_latency_seconds_bucket{model="intent",le="+Inf"} 7.0
"""


def test_metric_value_from_prometheus_text() -> None:
    assert metric_max(PAGE, LOOP_LAG) == 0.0125
    assert metric_max(PAGE, "banter_model_latency_seconds_bucket") == 7.0
    assert metric_max(PAGE, "banter_missing") is None
    assert metric_max("", LOOP_LAG) is None


def _process(proc: Path, pid: int, pgid: int, rss_kb: int) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "stat").write_text(f"{pid} (python (x)) S 1 {pgid} {pgid} 0 -1\n")
    (proc / str(pid) / "status").write_text(f"Name:\tpython\nVmRSS:\t   {rss_kb} kB\n")


def test_group_memory_from_proc(tmp_path: Path) -> None:
    _process(tmp_path, 100, 100, 1000)
    _process(tmp_path, 101, 100, 500)
    _process(tmp_path, 102, 7, 9999)
    (tmp_path / "self").mkdir()
    assert _proc_group_rss(100, tmp_path) == 1500 * 1024


def test_own_process_group_has_memory() -> None:
    assert group_rss_bytes(os.getpgid(0)) > 0


def test_every_labelled_value_counts() -> None:
    page = 'banter_consumer_lag_messages{topic="a.turns"} 3.0\nbanter_consumer_lag_messages{topic="a.outputs"} 4.0\n'
    assert metric_values(page, "banter_consumer_lag_messages") == [3.0, 4.0]
    assert metric_values(page, "banter_consumer_lag") == []
