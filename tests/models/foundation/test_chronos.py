"""Chronos-Bolt through chronos-forecasting: quantiles as samples, checkpoint loading.

Released weights are used only when ALPHAFORGE_CHRONOS_WEIGHTS names a local folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip(
    "chronos.chronos_bolt",
    reason=("chronos-forecasting is not installed: pip install 'alphaforge[chronos]'"),
)

from alphaforge.errors import ConfigError  # noqa: E402
from alphaforge.models.foundation.chronos import (  # noqa: E402
    ChronosAdapter,
    interpolate_quantiles,
)


def _tiny(**params) -> ChronosAdapter:
    return ChronosAdapter.from_params({**ChronosAdapter.test_params(), **params}, random_state=0)


def test_interpolated_levels_follow_the_piecewise_linear_quantile_function() -> None:
    levels = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
    q = torch.tensor([[[-2.0], [-0.5], [0.0], [1.0], [4.0]]])  # (1, Q, 1)
    got = interpolate_quantiles(q, levels, 10)[0, :, 0].numpy()
    want = np.interp(
        (np.arange(10) + 0.5) / 10, [0, *levels.tolist(), 1], [-2.0, *q[0, :, 0].tolist(), 4.0]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_samples_are_the_models_quantiles(panel) -> None:
    X, y = panel
    model = _tiny(quantile_mode="levels").fit(X, y)
    bank = model.sample_targets(X)
    assert bank.shape == (len(X), 9)  # one "sample" per predicted level, num_samples ignored
    prices = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, (3, 32)), 1))
    with torch.inference_mode():
        q = model.module_(context=torch.tensor(prices, dtype=torch.float32)).quantile_preds
    np.testing.assert_allclose(
        model.sample(prices, horizon=2), np.sort(q[:, :, :2].numpy(), axis=1), rtol=1e-5, atol=1e-3
    )  # float32, other batch shape
    median = _tiny(quantile_mode="levels", aggregation="median").fit(X, y).predict(X)
    np.testing.assert_allclose(median.to_numpy(), bank[:, 4], rtol=1e-12)


def test_volatility_labels_are_refused(panel) -> None:
    X, y = panel
    with pytest.raises(ConfigError, match="cannot forecast a 'volatility' label"):
        _tiny(target="volatility").fit(X, y)


def test_loads_a_saved_pretrained_directory(tmp_path: Path, panel) -> None:
    X, y = panel
    reference = _tiny().fit(X, y)
    reference.module_.save_pretrained(tmp_path / "chronos-bolt-small")
    params = {k: v for k, v in ChronosAdapter.test_params().items() if k != "arch"}
    loaded = ChronosAdapter.from_path(tmp_path, params).fit(X, y)
    pd.testing.assert_series_equal(loaded.predict(X), reference.predict(X))


@pytest.mark.skipif(
    not os.environ.get("ALPHAFORGE_CHRONOS_WEIGHTS"),
    reason="set ALPHAFORGE_CHRONOS_WEIGHTS to a local Chronos-Bolt folder",
)
def test_released_weights_forecast_the_panel(panel) -> None:
    X, y = panel
    model = ChronosAdapter.from_path(
        os.environ["ALPHAFORGE_CHRONOS_WEIGHTS"], {"max_context": 64, "device": "cpu"}
    )
    pred = model.fit(X, y).predict(X)
    assert np.isfinite(pred.to_numpy()).all() and pred.abs().max() < 0.5
