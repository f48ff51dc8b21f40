"""Adding a model is one file plus one registry line: no edit to run, tuning or the CLI.

The toy model lives in this test folder; registering it (the one line) makes it run through
``run_experiment``, ``tune``, the CLI's model table and the contract suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.config import load_config
from alphaforge.registry import MODELS, ModelEntry, get_model
from alphaforge.run import run_experiment
from alphaforge.testing import check_forecaster
from alphaforge.tuning import tune

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ENTRY = ModelEntry(
    "toy_forecaster:ToyRidgeForecaster",
    "linear",
    None,
    "ridge regression written outside the package",
)


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setitem(MODELS, "toy_ridge", ENTRY)  # the one registry line
    return "toy_ridge"


def test_toy_model_passes_the_contract_suite(toy: str) -> None:
    check_forecaster(toy)


def test_toy_model_runs_through_run_experiment(toy: str, tmp_path: Path) -> None:
    raw = load_config(CONFIGS / "tiny.yaml").model_dump()
    raw["models"] = [{"name": toy, "params": {"alpha": 10.0}}]
    result = run_experiment(raw, out=tmp_path / "run")
    preds = result.predictions
    assert set(preds["model"]) >= {toy, "zero", "trailing_mean"}
    assert preds.loc[preds["model"] == toy, "y_pred"].notna().all()
    saved = json.loads((tmp_path / "run" / "models" / toy / "fold_0" / "meta.json").read_text())
    assert saved["model"] == toy and saved["config"] == {"alpha": 10.0}
    # the planted signal of tiny.yaml is linear: a ridge finds some of it
    assert result.metrics["models"][toy]["test"]["overall"]["rank_ic"] > 0.0


def test_toy_model_is_tuned_and_listed(toy: str, tmp_path: Path) -> None:
    summary = tune(
        data="synthetic:n_symbols=2,n_bars=400,seed=1",
        model=toy,
        trials=3,
        symbols=["S000"],
        root=tmp_path,
    )
    (res,) = summary.results
    assert res.model == toy and res.n_trials == 3 and 1e-3 <= res.params["alpha"] <= 1e3
    assert get_model(toy).from_params(res.params).get_params() == res.params
    listed = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert listed.exit_code == 0 and toy in listed.output
