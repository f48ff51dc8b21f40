"""One-symbol studies: cross-sectional metrics are config errors; the pruner reads the study's way.

- ``metric: rank_ic`` (or any cross-sectional metric) and ``early_stopping_metric: rank_ic`` in
  ``fixed_params`` fail when the options are read, before any data is loaded;
- the early-stopping score (lower is better) reaches the pruner negated when the study
  maximises, so Optuna's median rule prunes the worst trials either way.
"""

from __future__ import annotations

import optuna
import pytest

from alphaforge.errors import ConfigError
from alphaforge.tuning import TuneConfig, make_tune_config, prepare
from alphaforge.tuning.objective import make_objective

DATA = "synthetic:n_symbols=3,n_bars=400,seed=1"


@pytest.mark.parametrize("metric", ["rank_ic", "ic", "top5_hit_rate"])
def test_cross_sectional_metric_is_a_config_error(metric: str) -> None:
    with pytest.raises(ConfigError, match=f"'metric': '{metric}' is cross-sectional") as err:
        TuneConfig(metric=metric)
    assert "pct_return_mae" in str(err.value) and "qlike" in str(err.value)
    with pytest.raises(ConfigError, match="tune.yaml: tune option 'metric'"):
        make_tune_config({"metric": metric}, source="tune.yaml")
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        TuneConfig(metric="nope")
    TuneConfig(metric="direction_accuracy")  # time-series metrics are fine


def test_rank_ic_early_stopping_is_a_config_error() -> None:
    fixed = {"lightgbm": {"n_jobs": 1}, "lstm": {"early_stopping_metric": "rank_ic"}}
    with pytest.raises(ConfigError, match="lstm.early_stopping_metric='rank_ic'"):
        TuneConfig(fixed_params=fixed)
    TuneConfig(fixed_params={"lstm": {"early_stopping_metric": "loss"}})


@pytest.mark.parametrize(("metric", "sign"), [("pct_return_mae", 1.0), ("direction_accuracy", -1)])
def test_pruner_gets_scores_in_the_study_direction(metric: str, sign: float) -> None:
    d = prepare(DATA, ["S000"], label="forward_return", horizon=1, features=None, val=30, test=20)
    fixed = {"n_estimators": 30, "early_stopping_rounds": None, "n_jobs": 1}
    direction = "maximize" if sign < 0 else "minimize"
    study = optuna.create_study(direction=direction, pruner=optuna.pruners.NopPruner())
    study.optimize(make_objective("lightgbm", d["S000"], metric, fixed, seed=0), n_trials=1)
    reported = study.trials[0].intermediate_values
    assert sorted(reported) == [0, 25]  # every PRUNE_EVERY rounds
    assert all(sign * v > 0 for v in reported.values())  # valid MSE > 0, negated to maximise
