"""Shared paths: the fixtures live in the Rust crates' test folders (copied there from
../shared/fixtures), so the Python suite replays the same reference data."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GYM_FIXTURES = REPO / "crates/rein-envs/tests/fixtures/gymnasium"
MUJOCO_FIXTURES = REPO / "crates/rein-envs/tests/fixtures/mujoco"
DM_CONTROL_FIXTURES = REPO / "crates/rein-envs/tests/fixtures/dm_control"
METRIC_FIXTURES = REPO / "crates/rein-text/tests/fixtures/metrics"


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"
