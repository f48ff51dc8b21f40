"""Toto through toto-ts: one-pass sampler vs the package, Student-t draws, checkpoints.

Our one-pass sampler is checked against the package's per-sample forecaster; released weights
are used only when ALPHAFORGE_TOTO_WEIGHTS names a local folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

pytest.importorskip(
    "toto.model.toto",
    reason=(
        "toto-ts is not installed: pip install 'alphaforge[toto]' && "
        "pip install --no-deps toto-ts==0.2.0 gluonts==0.17.0"
    ),
)

from toto.data.util.dataset import MaskedTimeseries  # noqa: E402
from toto.inference.forecaster import TotoForecaster  # noqa: E402

from alphaforge.errors import ConfigError  # noqa: E402
from alphaforge.models.foundation.toto import TotoAdapter, student_t_polar  # noqa: E402


def _tiny(**params) -> TotoAdapter:
    return TotoAdapter.from_params({**TotoAdapter.test_params(), **params}, random_state=0)


@pytest.mark.parametrize("df", [2.2, 5.0, 40.0])
def test_polar_student_t_matches_scipy(df: float) -> None:
    u = torch.rand(20_000, 24, generator=torch.Generator().manual_seed(int(df * 10)))
    draws = student_t_polar(torch.full((20_000,), df), u).numpy()
    assert stats.kstest(draws, stats.t(df).cdf).pvalue > 1e-3


def test_one_pass_samples_match_the_package_forecaster() -> None:
    model = _tiny(num_samples=3000, samples_per_batch=6000)
    prices = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, (2, 32)), 1))
    ours = model.sample(prices, horizon=3)  # (2, S, 3), one forward pass per series
    series = torch.tensor(prices, dtype=torch.float32)[:, None]
    inputs = MaskedTimeseries(
        series=series,
        padding_mask=torch.ones_like(series, dtype=torch.bool),
        id_mask=torch.zeros_like(series, dtype=torch.int),
        timestamp_seconds=torch.zeros_like(series, dtype=torch.int),
        time_interval_seconds=torch.full((2, 1), 86400, dtype=torch.int),
    )
    torch.manual_seed(0)
    with torch.inference_mode():  # the package: the context repeated once per sample
        ref = (
            TotoForecaster(model.module_.model)
            .forecast(inputs, prediction_length=3, num_samples=3000, samples_per_batch=1000)
            .samples
        )
    for b in range(2):
        for h in range(3):
            assert stats.ks_2samp(ours[b, :, h], ref[b, 0, h].numpy()).pvalue > 1e-3, (b, h)


def test_horizon_beyond_one_patch_is_refused() -> None:
    with pytest.raises(ConfigError, match="one patch ahead"):
        _tiny().sample(np.ones((1, 16)), horizon=9)  # tiny patch size: 8


def test_loads_a_checkpoint_directory(tmp_path: Path, panel) -> None:
    from safetensors.torch import save_file

    X, y = panel
    reference = _tiny().fit(X, y)
    folder = tmp_path / "Toto-Open-Base-1.0"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(reference.module_config_))
    save_file(
        {k: v.contiguous() for k, v in reference.module_.state_dict().items()},
        str(folder / "model.safetensors"),
    )
    params = {k: v for k, v in TotoAdapter.test_params().items() if k != "arch"}
    loaded = TotoAdapter.from_path(tmp_path, params, random_state=0).fit(X, y)
    pd.testing.assert_series_equal(loaded.predict(X), reference.predict(X))


@pytest.mark.skipif(
    not os.environ.get("ALPHAFORGE_TOTO_WEIGHTS"),
    reason="set ALPHAFORGE_TOTO_WEIGHTS to a local Toto checkpoint folder",
)
def test_released_weights_forecast_the_panel(panel) -> None:
    X, y = panel
    model = TotoAdapter.from_path(
        os.environ["ALPHAFORGE_TOTO_WEIGHTS"],
        {"num_samples": 64, "max_context": 64, "device": "cpu"},
    )
    pred = model.fit(X, y).predict(X)
    assert np.isfinite(pred.to_numpy()).all() and pred.abs().max() < 0.5
