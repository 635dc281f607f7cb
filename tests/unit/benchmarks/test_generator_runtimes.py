"""The generator runtimes benchmark's pure helpers: padding, trimming, batches, timing sums."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.generator_runtimes import (
    EOS,
    batch_prompts,
    common_prefix,
    left_pad,
    parse_list,
    timing_summary,
    trim_at_eos,
)


def test_left_pad_puts_padding_first_and_counts_positions_from_the_first_real_token() -> None:
    ids, mask, positions = left_pad([[5, 6, 7], [8]], pad=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert ids.dtype == mask.dtype == positions.dtype == np.int64


def test_trim_at_eos_cuts_before_the_first_end_of_sequence() -> None:
    assert trim_at_eos([4, 5, EOS, 6, EOS]) == [4, 5]
    assert trim_at_eos([4, 5]) == [4, 5]
    assert trim_at_eos([EOS]) == []


def test_batch_prompts_cycles_and_moves_batch_one_with_the_round() -> None:
    prompts = [[i] for i in range(16)]
    assert batch_prompts(prompts, 1, 0) == [[0]]
    assert batch_prompts(prompts, 1, 3) == [[3]]
    assert batch_prompts(prompts, 8, 1) == [[i] for i in range(8, 16)]
    assert batch_prompts(prompts, 32, 2) == [[i % 16] for i in range(32)]


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_parse_list() -> None:
    assert parse_list("torch, ct2-int8-t1,") == ["torch", "ct2-int8-t1"]
    assert parse_list("1,8,32", int) == [1, 8, 32]


def test_timing_summary_splits_prefill_from_decode() -> None:
    # T(1) = 0.2 s, T(11) = 1.2 s: 100 ms per decode step
    s = timing_summary([0.2, 0.3, 0.1], [1.2, 1.1, 1.3], batch=8, tokens=11)
    assert s["prefill_ms"] == pytest.approx(200)
    assert s["decode_ms_per_step"] == pytest.approx(100)
    assert s["ms_per_token_with_prompt"] == pytest.approx(1200 / 11)
    assert s["tokens_per_s"] == pytest.approx(8 * 11 / 1.2)
    assert s["decode_tokens_per_s"] == pytest.approx(80)


def test_timing_summary_is_nan_when_noise_hides_the_decode() -> None:
    s = timing_summary([1.0], [0.9], batch=1, tokens=4)
    assert math.isnan(s["decode_ms_per_step"]) and math.isnan(s["decode_tokens_per_s"])
