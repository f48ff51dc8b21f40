"""PCAFactors: estimator contract, NaN policy, train-only statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import NotFittedError
from alphaforge.features import PCAFactors, build_features


@pytest.fixture(scope="module")
def X(panel: pd.DataFrame) -> pd.DataFrame:
    return build_features(panel)


def test_not_fitted_and_init_stores_only() -> None:
    pca = PCAFactors(n_components=3, columns=["a"], random_state=4)
    assert vars(pca) == {"n_components": 3, "columns": ["a"], "random_state": 4}
    with pytest.raises(NotFittedError):
        pca.transform(pd.DataFrame({"a": [1.0]}))


def test_fit_transform_shapes_and_names(X: pd.DataFrame) -> None:
    pca = PCAFactors(n_components=8)
    assert pca.fit(X) is pca
    assert pca.columns_ == list(X.columns) and pca.n_components_ == 8
    out = pca.transform(X)
    assert list(out.columns) == [f"pca_{i}" for i in range(8)]
    assert out.index is X.index and (out.dtypes == np.float64).all()
    ratios = pca.explained_variance_ratio_
    assert np.all(np.diff(ratios) <= 1e-12) and 0 < ratios.sum() <= 1
    # every row has some finite feature (calendar ones): no NaN factors
    assert out.notna().all().all()
    np.testing.assert_allclose(pca.fit_transform(X), out)


def test_standardisation_uses_train_rows_only(X: pd.DataFrame) -> None:
    cols = ["ret_1", "rv_20", "rsi_14"]
    train = X.iloc[: len(X) // 2]
    pca = PCAFactors(n_components=2, columns=cols).fit(train)
    np.testing.assert_allclose(pca.mean_, train[cols].mean().to_numpy())
    np.testing.assert_allclose(pca.scale_, train[cols].std(ddof=0).to_numpy())
    # transform is row-wise: a row's factors do not depend on the other rows passed
    full = pca.transform(X)
    part = pca.transform(X.iloc[-50:])
    np.testing.assert_allclose(part.to_numpy(), full.to_numpy()[-50:], rtol=1e-12, atol=1e-12)


def test_nan_policy() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((200, 4)), columns=list("abcd"))
    frame.loc[:20, "a"] = np.nan  # warm-up style NaNs -> the training mean
    frame["e"] = np.nan  # an all-NaN column (volume features on close-only data)
    frame["f"] = 1.0  # a constant column
    frame.loc[150, :] = np.nan  # an empty row
    pca = PCAFactors(n_components=3).fit(frame)
    assert pca.scale_[list(frame.columns).index("e")] == 1.0
    assert pca.scale_[list(frame.columns).index("f")] == 1.0
    out = pca.transform(frame)
    assert out.loc[150].isna().all()
    assert out.drop(index=150).notna().all().all()
    # a NaN feature acts as its training mean
    row = frame.iloc[[5]]
    filled = row.fillna({"a": pca.mean_[0]})
    np.testing.assert_allclose(pca.transform(row).to_numpy(), pca.transform(filled).to_numpy())


def test_components_capped_and_deterministic(X: pd.DataFrame) -> None:
    cols = ["ret_1", "ret_5"]
    pca = PCAFactors(n_components=8, columns=cols).fit(X)
    assert pca.n_components_ == 2
    again = PCAFactors(n_components=8, columns=cols).fit(X)
    np.testing.assert_array_equal(pca.pca_.components_, again.pca_.components_)
    with pytest.raises(ValueError, match="numeric"):
        PCAFactors().fit(pd.DataFrame({"s": ["x", "y"]}))
