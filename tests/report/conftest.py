"""Small synthetic run directories, written with pandas only (independent of alphaforge.run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.backtest import SUMMARY_KEYS

MODELS = {  # name -> baseline?
    "lightgbm": False,
    "xgboost": False,
    "lstm": False,
    "multitask_transformer": False,  # the longest registry name: tables must still fit
    "zero": True,
    "trailing_mean": True,
}
N_SYMBOLS, N_BARS, N_FOLDS, SEG = 12, 180, 3, 40  # SEG: test bars per fold
CONFIG = """\
name: report-fixture
seed: 0
data:
  source: "synthetic:n_symbols=12,n_bars=180"   # <b>not bold</b> & "quoted"
label:
  kind: forward_return
  horizon: 1
split: {train: 20, valid: 20, test: 40, n_folds: 3, expanding: true}
models:
  - name: lightgbm
  - name: xgboost
"""


def _summary(rng: np.random.Generator, sharpe: float | None) -> dict[str, float | None]:
    """A backtest summary; ``sharpe=None``: the flat book of the zero baseline."""
    out: dict[str, float | None] = {k: float(rng.normal(0, 0.1)) for k in SUMMARY_KEYS}
    if sharpe is None:  # no position at any bar, as alphaforge.backtest reports it
        out.update(dict.fromkeys(("ann_return", "ann_vol", "max_drawdown", "avg_turnover"), 0.0))
        out.update(dict.fromkeys(("sharpe", "sortino", "calmar", "hit_rate"), None))
        out["cost_drag"], out["n_bars"] = 0.0, 120
        return out
    out["sharpe"], out["max_drawdown"], out["n_bars"] = sharpe, -abs(sharpe) / 10 - 0.01, 120
    out["hit_rate"], out["avg_turnover"] = 0.5 + sharpe / 50, 0.8
    out["calmar"] = None  # null in JSON: shown as a dash
    return out


def _backtest_entry(rng: np.random.Generator, m_i: int, model: str) -> dict[str, object]:
    """``metrics.json`` backtest entry: Sharpe falls with the model's position; zero is flat."""

    def side(sharpe: float) -> dict[str, float | None]:
        return _summary(rng, None if model == "zero" else sharpe)

    return {
        "base": {"gross": side(2.0 - m_i * 0.4), "net": side(1.5 - m_i * 0.4), "warnings": []},
        "lagged": {"gross": side(0.3), "net": side(0.1), "warnings": []},
        "sharpe_drop": 1.7,
    }


def _minus(value: float | None, delta: float) -> float | None:
    return None if value is None else value - delta


def make_run_dir(
    root: Path, *, optional: bool = True, backtest: bool = True, seed: int = 0
) -> Path:
    """Write a fake run directory: predictions, metrics, folds, backtest and optional files.

    Args:
        root: Directory to create.
        optional: Also write feature_importance, history, gates and tuning parquet files.
        backtest: Write backtest.parquet.
        seed: Seed of the fake numbers.

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ts = pd.date_range("2022-01-03", periods=N_BARS, freq="B")
    symbols = [f"S{i:02d}" for i in range(N_SYMBOLS)]
    y = rng.normal(0, 0.02, (N_BARS, N_SYMBOLS))
    frames, folds = [], []
    for k in range(N_FOLDS):
        v0 = 20 + k * SEG  # expanding train [0, v0), valid 20 bars, test 40 bars; no overlap
        valid, test = np.arange(v0, v0 + SEG // 2), np.arange(v0 + SEG // 2, v0 + SEG + SEG // 2)
        folds.append(
            {
                "fold": k,
                "train": {"start": str(ts[0]), "end": str(ts[v0 - 1]), "n_bars": int(v0)},
                "valid": {
                    "start": str(ts[valid[0]]),
                    "end": str(ts[valid[-1]]),
                    "n_bars": len(valid),
                },
                "test": {"start": str(ts[test[0]]), "end": str(ts[test[-1]]), "n_bars": len(test)},
            }
        )
        for m_i, model in enumerate(MODELS):
            strength = 0.0 if MODELS[model] else 0.5 - 0.1 * m_i
            for part, rows in (("valid", valid), ("test", test)):
                yt = y[rows]
                yp = strength * yt + rng.normal(0, 0.02, yt.shape)
                if model == "zero":
                    yp = np.zeros_like(yt)
                frames.append(
                    pd.DataFrame(
                        {
                            "timestamp": np.repeat(ts[rows], N_SYMBOLS),
                            "symbol": np.tile(symbols, len(rows)),
                            "model": model,
                            "fold": np.int32(k),
                            "split": part,
                            "y_true": yt.ravel(),
                            "y_pred": yp.ravel(),
                        }
                    )
                )
    preds = pd.concat(frames, ignore_index=True)
    preds.loc[preds.index[::97], "y_true"] = np.nan  # a few missing labels
    preds.to_parquet(root / "predictions.parquet", index=False)

    models_json = {}
    for m_i, (model, base) in enumerate(MODELS.items()):

        def block(
            offset: float, m_i: int = m_i, base: bool = base, model: str = model
        ) -> dict[str, object]:
            overall = {  # every metric of a return label: the widest test table
                "mae": 0.016 + 0.001 * m_i,
                "rmse": 0.02 + 0.001 * m_i,
                "ts_rank_ic": -0.000123 * m_i,
                "pct_return_mae": 1.6 + 0.1 * m_i,
                "direction_accuracy": 0.55 - 0.01 * m_i,
                "ic": 0.3 - 0.05 * m_i + offset,
                "rank_ic": 0.28 - 0.05 * m_i + offset,
                "icir": None,
                "rank_icir": -0.000456 * m_i,
                "top5_hit_rate": float("nan") if base else 0.4,
                "top10_hit_rate": float("nan") if base else 0.55,
                "quantile_spread": -0.000789 * m_i,
            }
            if model == "zero":  # constant forecasts: no cross-sectional metric
                for key in ("ic", "rank_ic", "rank_icir", "quantile_spread"):
                    overall[key] = None
                overall["direction_accuracy"] = 0.0
            return {
                "overall": overall,
                "per_fold": {
                    str(k): {**overall, "rank_ic": _minus(overall["rank_ic"], 0.1 * k)}
                    for k in range(N_FOLDS)
                },
            }

        entry: dict[str, object] = {"baseline": base, "valid": block(0.02), "test": block(0.0)}
        entry["backtest"] = _backtest_entry(rng, m_i, model)
        models_json[model] = entry
    metrics = {
        "label": {"kind": "forward_return", "horizon": 1},
        "label_kind": "return",
        "n_folds": N_FOLDS,
        "elapsed_s": 83.4,
        "models": models_json,
        "backtest_spec": {  # as BacktestSpec.model_dump() writes it: every strategy's keys
            "strategy": "long_short",
            "quantile": 0.2,
            "weighting": "equal",
            "gross": 1.0,
            "k": 10,
            "n_drop": None,
            "threshold": 0.0,
            "long_only": False,
            "costs_bps": 5.0,
            "min_cost": 0.0,
            "delay": 1,
            "rebalance_every": 1,
            "periods_per_year": None,
        },
    }
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2).replace("NaN", "null"))
    (root / "folds.json").write_text(json.dumps(folds, indent=2))
    (root / "config.yaml").write_text(CONFIG)
    (root / "run.log").write_text("2024-01-01 00:00:00 INFO alphaforge.run: started <run>\n")

    if backtest:
        test_ts = np.sort(preds.loc[preds["split"] == "test", "timestamp"].unique())
        bt = []
        for m_i, model in enumerate(MODELS):
            for variant in ("base", "lagged"):
                gross = rng.normal(0.001 * (3 - m_i), 0.01, len(test_ts))
                cost = np.full(len(test_ts), 0.0004)
                if model == "zero":  # the flat book of constant forecasts
                    gross, cost = np.zeros(len(test_ts)), np.zeros(len(test_ts))
                bt.append(
                    pd.DataFrame(
                        {
                            "model": model,
                            "variant": variant,
                            "timestamp": test_ts,
                            "gross": gross,
                            "net": gross - cost,
                            "cost": cost,
                            "turnover": 0.8,
                            "n_long": 2,
                            "n_short": 2,
                        }
                    )
                )
        pd.concat(bt, ignore_index=True).to_parquet(root / "backtest.parquet", index=False)

    if optional:
        feats = [f"feature_{i:02d}" for i in range(30)]
        pd.DataFrame(
            [
                {"model": m, "fold": k, "feature": f, "importance": float(rng.gamma(2.0))}
                for m in ("lightgbm", "xgboost")
                for k in range(N_FOLDS)
                for f in feats
            ]
        ).to_parquet(root / "feature_importance.parquet", index=False)
        pd.DataFrame(
            [
                {
                    "model": "lstm",
                    "fold": k,
                    "epoch": e,
                    "train_loss": 1 / (e + 1) + 0.1 * k,
                    "valid_loss": 1 / (e + 1) + 0.2 + 0.01 * e,
                }
                for k in range(N_FOLDS)
                for e in range(15)
            ]
        ).to_parquet(root / "history.parquet", index=False)
        pd.DataFrame(
            [
                {"model": "lstm", "fold": k, "feature": f, "gate": float(rng.uniform())}
                for k in range(N_FOLDS)
                for f in feats
            ]
        ).to_parquet(root / "gates.parquet", index=False)
        states = ["COMPLETE"] * 18 + ["PRUNED", "FAIL"]
        pd.DataFrame(
            {
                "study": "lightgbm-rank_ic",
                "trial": np.arange(20),
                "value": np.where(np.array(states) == "FAIL", np.nan, rng.normal(0.05, 0.02, 20)),
                "state": states,
            }
        ).to_parquet(root / "tuning.parquet", index=False)
    return root


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with every file the report can read."""
    return make_run_dir(tmp_path_factory.mktemp("report") / "full")


@pytest.fixture(scope="session")
def full_html(full_run: Path) -> str:
    """The rendered report of :func:`full_run`."""
    from alphaforge.report import render

    return render(full_run)


@pytest.fixture(scope="session")
def minimal_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the required files plus folds.json (no backtest, no optional tables)."""
    return make_run_dir(
        tmp_path_factory.mktemp("report") / "minimal", optional=False, backtest=False
    )


@pytest.fixture(scope="session")
def wide_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`full_run` plus every optional table: significance for each model, an ensemble."""
    run = make_run_dir(tmp_path_factory.mktemp("report") / "wide")
    path = run / "metrics.json"
    metrics = json.loads(path.read_text())
    for name, entry in metrics["models"].items():
        entry["significance"] = {
            "mean_rank_ic": -0.000123,
            "rank_ic_t": -12.34,
            "rank_ic_crit": 2.03,
            "rank_ic_ci": [-0.000234, 0.000345],
            "sharpe": -1.23,
            "sharpe_ci": [-12.3, 10.2],
            "dsr": 0.0123,
            "n_trials": 1234,
            "significant": name == "lightgbm",
        }
    members = ["lightgbm", "xgboost", "lstm", "multitask_transformer"]
    metrics["models"]["multitask_transformer"].update(
        ensemble={"kind": "fusion", "members": members},
        fusion_weights={"mean": {m: 0.25 for m in members}},
        vs_best_member={
            "rank_ic": {"ensemble": 0.1, "best_member": "multitask_transformer", "best": 0.2,
                        "diff": -0.1, "better": False},
            "mae": {"ensemble": 0.016, "best_member": "lightgbm", "best": 0.017, "diff": -0.001,
                    "better": True},
        },
    )  # fmt: skip
    path.write_text(json.dumps(metrics))
    return run
