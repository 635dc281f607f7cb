"""Shared fixtures: a fresh metrics registry per test."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())
