"""``compare_runs`` and ``alphaforge compare`` on small synthetic run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alphaforge import artifacts
from alphaforge.cli import app, ui
from alphaforge.cli import run as cli_run
from alphaforge.compare import compare_runs
from alphaforge.errors import ConfigError, DataError
from alphaforge.metrics import rank_ic_series
from alphaforge.run import RunResult
from alphaforge.stats import mean_test

N_BARS, N_SYMBOLS = 300, 12
TS = pd.bdate_range("2022-01-03", periods=N_BARS)
SYMBOLS = [f"S{i:02d}" for i in range(N_SYMBOLS)]
Y = np.random.default_rng(0).normal(0, 0.02, (N_BARS, N_SYMBOLS))  # labels every run shares


def write_run(root: Path, models: dict[str, float], *, seed: int, start: int = 0) -> Path:
    """A run directory with ``predictions.parquet`` (test from bar ``start``) and ``metrics.json``.

    Args:
        root: Directory to create.
        models: Model name -> signal strength (prediction = strength * label + noise).
        seed: Seed of the noise.
        start: First test bar; earlier bars are "valid".
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    frames = []
    for model, strength in models.items():
        pred = strength * Y + rng.normal(0, 0.02, Y.shape)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": np.repeat(TS, N_SYMBOLS),
                    "symbol": np.tile(SYMBOLS, N_BARS),
                    "model": model,
                    "fold": np.int32(0),
                    "split": np.repeat(
                        np.where(np.arange(N_BARS) < start, "valid", "test"), N_SYMBOLS
                    ),
                    "y_true": Y.ravel(),
                    "y_pred": pred.ravel(),
                }
            )
        )
    pd.concat(frames, ignore_index=True).to_parquet(root / artifacts.PREDICTIONS, index=False)
    metrics = {"label": {"kind": "forward_return", "horizon": 1}, "models": {}}
    (root / artifacts.METRICS).write_text(json.dumps(metrics))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    a = write_run(root / "a", {"strong": 0.5, "noise": 0.0}, seed=1)
    b = write_run(root / "b", {"weak": 0.1}, seed=2, start=100)  # test from bar 100 only
    return a, b


def test_models_side_by_side_on_common_bars(runs):
    a, b = runs
    table = compare_runs([a, b])
    assert list(table.index) == ["a/strong", "a/noise", "b/weak"]
    assert table.attrs == {"n_bars": 200 * N_SYMBOLS, "horizon": 1, "reference": "a/strong"}
    assert (table["n_dates"] == 200).all()  # run b's test bars are the common ones
    strong, noise, weak = (table.loc[m] for m in table.index)
    assert strong["significant"] and strong["ci_lo"] > 0 and strong["t"] > strong["crit"]
    assert not noise["significant"]
    # the reference has no difference with itself; the others are significantly worse
    assert np.isnan(strong["diff"]) and not strong["diff_significant"]
    assert weak["diff"] < 0 and weak["diff_significant"] and weak["diff_ci_hi"] < 0
    assert noise["diff"] == pytest.approx(noise["rank_ic"] - strong["rank_ic"])


def test_numbers_are_the_stats_of_the_common_bars(runs):
    a, b = runs
    table = compare_runs([b, a], models=["weak", "a/strong"], seed=3)
    assert list(table.index) == ["b/weak", "a/strong"]
    preds = pd.read_parquet(a / artifacts.PREDICTIONS)
    s = preds[(preds["model"] == "strong") & (preds["timestamp"] >= TS[100])]
    s = s.set_index(["timestamp", "symbol"])
    expected = mean_test(rank_ic_series(s["y_true"], s["y_pred"]), horizon=1, seed=3)
    row = table.loc["a/strong"]
    assert row["rank_ic"] == pytest.approx(expected["mean"])
    assert row["t"] == pytest.approx(expected["t"])
    assert [row["ci_lo"], row["ci_hi"]] == pytest.approx(expected["ci"])


def test_clear_errors(runs, tmp_path):
    a, b = runs
    with pytest.raises(DataError, match="run directory not found"):
        compare_runs([a, tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="predictions.parquet: not found"):
        compare_runs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no such model"):
        compare_runs([a], models=["lstm"])
    with pytest.raises(ConfigError, match="at least one"):
        compare_runs([])
    # test bars that do not overlap
    late = write_run(tmp_path / "late", {"m": 0.3}, seed=4, start=N_BARS)  # no test rows at all
    with pytest.raises(DataError, match="no 'test' rows"):
        compare_runs([a, late])
    p = pd.read_parquet(b / artifacts.PREDICTIONS)
    p["timestamp"] = p["timestamp"] + pd.Timedelta(days=10_000)
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    p.to_parquet(shifted / artifacts.PREDICTIONS, index=False)
    with pytest.raises(DataError, match="no test bar has a prediction of every model"):
        compare_runs([a, shifted])
    # another label on the same bars
    p = pd.read_parquet(b / artifacts.PREDICTIONS)
    p["y_true"] *= 2
    other = tmp_path / "other"
    other.mkdir()
    p.to_parquet(other / artifacts.PREDICTIONS, index=False)
    with pytest.raises(DataError, match="labels differ"):
        compare_runs([a, other])


def test_clashing_run_names_use_paths(runs, tmp_path):
    a, _ = runs
    twin = write_run(tmp_path / "x" / "a", {"strong": 0.5}, seed=1)
    table = compare_runs([a, twin], models=["strong"])
    assert list(table.index) == [f"{a}/strong", f"{twin}/strong"]


def test_compare_command(runs, tmp_path):
    a, b = runs
    res = CliRunner().invoke(app, ["compare", str(a), str(b)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "a/strong" in res.output and "b/weak" in res.output and "95% CI" in res.output
    res = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "nope")])
    assert res.exit_code == 2 and "DataError" in res.output


def test_run_metrics_table_shows_significance():
    """``alphaforge run``'s table: Rank IC t and a significance marker after the Rank IC."""
    overall = {"rank_ic": 0.05, "ic": 0.04, "rmse": 0.02}
    metrics = {
        "models": {
            "lightgbm": {
                "baseline": False,
                "test": {"overall": overall},
                "significance": {"rank_ic_t": 3.456, "significant": True},
            },
            "zero": {
                "baseline": True,
                "test": {"overall": overall},
                "significance": {"rank_ic_t": None, "significant": False},
            },
        }
    }
    result = RunResult(None, Path("."), pd.DataFrame(), metrics)  # type: ignore[arg-type]
    with ui.out.capture() as captured:
        cli_run._print_metrics(result)
    text = captured.get()
    head = next(line for line in text.splitlines() if "rank_ic" in line)
    assert head.index("rank_ic") < head.index(" t ") < head.index("sig") < head.index(" ic ")
    lgb = next(line for line in text.splitlines() if "lightgbm" in line)
    assert "3.46" in lgb and "*" in lgb
    zero = next(line for line in text.splitlines() if "zero*" in line)
    assert zero.count("*") == 1  # the baseline mark only
