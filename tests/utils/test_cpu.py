"""CPU counting for tree libraries: affinity, cgroup quota, OMP_NUM_THREADS and n_jobs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alphaforge.errors import ConfigError
from alphaforge.models.forest import RandomForestForecaster
from alphaforge.models.trees import LightGBMForecaster, XGBoostForecaster
from alphaforge.testing import tiny_problem
from alphaforge.utils.cpu import available_cpus, cgroup_cpu_limit, resolve_n_jobs

AFFINITY = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU: still one thread
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota(tmp_path: Path, files: dict[str, str], expected: int | None) -> None:
    assert cgroup_cpu_limit(_cgroup(tmp_path, files)) == expected


def test_available_cpus_takes_the_smallest_limit(tmp_path: Path) -> None:
    none = tmp_path / "none"
    assert available_cpus(environ={}, cgroup_root=none) == AFFINITY
    assert available_cpus(environ={"OMP_NUM_THREADS": "1"}, cgroup_root=none) == 1
    assert available_cpus(environ={"OMP_NUM_THREADS": "1,1"}, cgroup_root=none) == 1
    assert available_cpus(environ={"OMP_NUM_THREADS": "4096"}, cgroup_root=none) == AFFINITY
    for ignored in ("", "0", "-3", "two"):  # as OpenMP ignores them
        assert available_cpus(environ={"OMP_NUM_THREADS": ignored}, cgroup_root=none) == AFFINITY
    quota = _cgroup(tmp_path / "q", {"cpu.max": "100000 100000"})
    assert available_cpus(environ={}, cgroup_root=quota) == 1


def test_resolve_n_jobs() -> None:
    assert resolve_n_jobs(3, available=8) == 3  # explicit counts are kept
    assert resolve_n_jobs(-1, available=8) == 8
    assert resolve_n_jobs(-2, available=8) == 7
    assert resolve_n_jobs(-20, available=8) == 1
    assert resolve_n_jobs(-1) == available_cpus()
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="n_jobs"):
            resolve_n_jobs(bad)  # type: ignore[arg-type]


def test_tree_models_pass_the_resolved_thread_count(monkeypatch) -> None:
    X, y = tiny_problem(n_symbols=4, n_bars=80, n_features=3, seed=0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lgbm = LightGBMForecaster.from_params({"n_estimators": 2}).fit(X, y)
    xgbm = XGBoostForecaster.from_params({"n_estimators": 2}).fit(X, y)
    assert lgbm._params()["num_threads"] == 1 and xgbm._params()["nthread"] == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert lgbm._params()["num_threads"] == available_cpus() == xgbm._params()["nthread"]
    forest = RandomForestForecaster.from_params({"n_estimators": 2, "n_jobs": -2}).fit(X, y)
    assert forest.booster_.params["num_threads"] == max(1, available_cpus() - 1)
