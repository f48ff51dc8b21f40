"""Faults during a Dask feature build: a worker SIGKILLed mid-build (Dask reruns its tasks, or
gives up with a clear error), or the building process itself killed. Either way the destination
is complete or absent, never half-written, and no temporary folder outlives its writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import distributed  # noqa: F401  (its config defaults, before dask.config.set overrides one)
import pytest

from alphaforge.data import load_panel, synthetic_panel
from alphaforge.engines.cluster import ClusterError, ClusterSpec, connect
from alphaforge.engines.dask_features import build_feature_dataset
from alphaforge.features import build_features

from .conftest import assert_same_values, read_dataset, write_dataset


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> str:
    panel = synthetic_panel(n_symbols=40, n_bars=300, seed=8)
    return write_dataset(panel, tmp_path_factory.mktemp("faults") / "bars", "plain_shards")


def _kill_a_worker_mid_build(bars: str, out: Path, allowed_failures: int) -> dict[str, object]:
    """Build with two worker processes; SIGKILL one as soon as the first partition is written."""
    result: dict[str, object] = {}
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        with connect(ClusterSpec(workers=2, processes=True)) as client:
            victim = sorted(client.run(os.getpid).values())[0]

            def build() -> None:
                try:
                    result["manifest"] = build_feature_dataset(
                        bars, out, client=client, partition_rows=1200
                    )
                except Exception as exc:  # what the build raised is the test's subject
                    result["error"] = exc

            thread = threading.Thread(target=build)
            thread.start()
            deadline = time.monotonic() + 60
            while not list(out.parent.glob(f".{out.name}.*.tmp/_base/*.parquet")):
                assert thread.is_alive() and time.monotonic() < deadline, result
                time.sleep(0.005)
            os.kill(victim, signal.SIGKILL)
            thread.join(timeout=120)
            assert not thread.is_alive()
    return result


@pytest.mark.parametrize("allowed_failures", [3, 0])
def test_killed_worker_finishes_by_retry_or_fails_clearly(bars, tmp_path, allowed_failures) -> None:
    out = tmp_path / "features"
    result = _kill_a_worker_mid_build(bars, out, allowed_failures)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "features"]
    assert leftovers == []  # no temporary folder, no moved-aside copy
    if "error" in result:  # Dask gave up: a clear error and no dataset
        assert isinstance(result["error"], ClusterError), repr(result["error"])
        assert "workers died" in str(result["error"]) and "nothing was written" in str(
            result["error"]
        )
        assert not out.exists()
    else:  # Dask reran the lost tasks: the whole dataset, equal to the in-memory build
        assert allowed_failures > 0 or "manifest" in result
        assert_same_values(read_dataset(out), build_features(load_panel(bars)))


def test_killed_build_leaves_nothing_and_the_next_one_sweeps_its_folder(bars, tmp_path) -> None:
    out = tmp_path / "features"
    cli = "import sys; from alphaforge.cli import app; sys.exit(app())"
    cmd = [sys.executable, "-c", cli, "features", bars, "--out", str(out)]
    cmd += ["--engine", "dask", "--workers", "1"]
    # its own process group: the build and its worker processes are killed together
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".features.*.tmp/_base/*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait(timeout=30)
    assert not out.exists()
    assert len(list(tmp_path.glob(".features.*.tmp"))) == 1  # the killed writer's folder
    with connect(ClusterSpec(workers=1, processes=False)) as client:
        build_feature_dataset(bars, out, client=client)
    assert [p.name for p in tmp_path.iterdir()] == ["features"]  # swept by the next build
    assert_same_values(read_dataset(out), build_features(load_panel(bars)))
