import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import ConfigError
from alphaforge.labels import LABELS, LabelSpec, make_label


def _panel(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for sym, n, start in (("AAA", 40, 0), ("BBB", 30, 5), ("CCC", 35, 2)):
        days = pd.bdate_range("2021-01-04", periods=60)[start:]
        keep = np.sort(rng.choice(len(days), n, replace=False))  # gaps: missing bars
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        for d, c in zip(days[keep], close, strict=True):
            rows.append((d, sym, c, c * 1.01, c * 0.99, c, 1000.0))
    df = pd.DataFrame(
        rows, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    )
    return df.set_index(["timestamp", "symbol"]).sort_index()


def _naive(panel, kind, h):
    out = {}
    for _sym, g in panel.groupby(level="symbol"):
        c = g["close"].to_numpy()
        for i, key in enumerate(g.index):
            if i + h >= len(c):
                out[key] = np.nan
            elif kind == "forward_return":
                out[key] = c[i + h] / c[i] - 1
            elif kind == "forward_log_return":
                out[key] = np.log(c[i + h] / c[i])
            elif kind == "direction":
                out[key] = float(c[i + h] > c[i])
            elif kind == "realized_vol":
                r = np.diff(np.log(c))  # r[j] = log(c[j+1]/c[j])
                out[key] = np.sqrt(np.sum(r[i : i + h] ** 2))
    return pd.Series(out).reindex(panel.index)


@pytest.mark.parametrize("kind", sorted(LABELS))
@pytest.mark.parametrize("h", [1, 3])
def test_label_matches_naive_loop(kind, h):
    panel = _panel()
    y = make_label(panel, kind, h)
    assert y.index.equals(panel.index) and y.name == kind
    np.testing.assert_allclose(y.to_numpy(), _naive(panel, kind, h).to_numpy(), rtol=1e-9)
    # the last h bars of every symbol are unknown, never filled
    assert y.groupby(level="symbol").tail(h).isna().all()


def test_unknown_label_and_bad_horizon():
    with pytest.raises(ConfigError, match="valid"):
        make_label(_panel(), "sharpe", 1)
    with pytest.raises(ConfigError, match="horizon"):
        make_label(_panel(), "forward_return", 0)


def test_label_spec_names_what_a_model_is_fitted_on():
    assert LabelSpec().label_kind == "return" and LabelSpec().horizon == 1
    assert LabelSpec("realized_vol", 5).label_kind == "volatility"
    with pytest.raises(ConfigError, match="unknown label 'fwd'.*forward_return"):
        LabelSpec("fwd")
    with pytest.raises(ConfigError, match="horizon"):
        LabelSpec("forward_return", 0)
