"""The registry's process-wide settings for the models it loads."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from models import registry
from models.artifacts import ArtifactsError
from models.config import ModelConfig


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.fixture
def restored_blas():
    with threadpool_limits(limits=None):  # whatever a test sets is undone after it
        yield


def test_loading_a_model_caps_numpys_blas_pool(restored_blas, tmp_path) -> None:
    np.ones((64, 64)) @ np.ones((64, 64))  # the pool exists
    threadpool_limits(limits=2, user_api="blas")
    with pytest.raises(ArtifactsError):  # nothing is built in tmp_path; the cap is set before the loader runs
        registry.load("responder", ModelConfig(cache_dir=tmp_path, blas_threads=1))
    assert _blas_threads() == {1}


def test_the_cap_is_never_below_one_thread(restored_blas) -> None:
    registry.limit_blas_threads(0)
    assert _blas_threads() == {1}


def test_the_worker_passes_its_setting_to_the_models() -> None:
    from streams.services import model_config
    from streams.settings import Settings

    assert model_config(Settings.from_env({"BANTER_BLAS_THREADS": "3"})).blas_threads == 3
    assert model_config(Settings.from_env({})).blas_threads == 1
