"""Token baselines and analysis tables, checked against naive loops."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import synthetic_panel
from alphaforge.models.token_analysis import (
    analyze_tokens,
    bigram_baseline,
    outlier_tokens,
    top_ngrams,
    transition_matrix,
    unigram_baseline,
)
from alphaforge.models.token_streams import TokenStreams
from alphaforge.models.tokenizer import QuantileTokenizer, bar_fields, panel_patches

from .test_token_streams import streams_of


@pytest.fixture(scope="module")
def returns() -> np.ndarray:
    """GARCH returns of a synthetic panel as training patches of one bar."""
    panel = synthetic_panel(n_symbols=8, n_bars=500, seed=3)
    patches, where = panel_patches(bar_fields(panel), 1)
    cut = where["timestamp"].sort_values().iloc[int(0.7 * len(where))]
    return patches[np.asarray(where["timestamp"] <= cut)]


# ---------------------------------------------------------------------------- baselines
def test_bigram_baseline_is_exact_on_a_cycle_and_beats_unigram() -> None:
    cycle = [0, 1, 2, 3] * 50
    train, valid = streams_of([cycle, cycle]).split(
        pd.Timestamp("2021-01-01") + pd.Timedelta(days=149)
    )
    bi, uni = bigram_baseline(train, valid, 4, alpha=1e-6), unigram_baseline(train, valid, 4)
    assert bi["accuracy"] == 1.0 and bi["cross_entropy"] < 1e-4
    assert uni["cross_entropy"] == pytest.approx(np.log(4), rel=1e-3)
    assert uni["top5_accuracy"] == 1.0 and bi["n_tokens"] == uni["n_tokens"] == 100


# ---------------------------------------------------------------------------- analysis
def test_analysis_tables_match_naive_loops() -> None:
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 6, size=n).tolist() for n in (40, 1, 25)]
    s = streams_of(docs)
    naive_t, naive_3 = np.zeros((6, 6)), Counter()
    for d in docs:
        for a, b in zip(d[:-1], d[1:], strict=True):
            naive_t[a, b] += 1
        for i in range(len(d) - 2):
            naive_3[" ".join(map(str, d[i : i + 3]))] += 1
    assert np.array_equal(transition_matrix(s, 6, normalize=False).to_numpy(), naive_t)
    probs = transition_matrix(s, 6).to_numpy()
    assert np.allclose(probs.sum(1)[naive_t.sum(1) > 0], 1.0)
    grams = top_ngrams(s, 3, top=1000)
    assert dict(zip(grams["ngram"], grams["count"], strict=True)) == dict(naive_3)
    assert grams["count"].is_monotonic_decreasing


def test_analyze_tokens_and_outliers(returns) -> None:
    train = returns
    tok = QuantileTokenizer(codebook_size=16).fit(train)
    where = pd.DataFrame(
        {
            "symbol": "A",
            "timestamp": pd.date_range("2020", periods=len(train)),
            "token": tok.encode(train),
        }
    )
    s = TokenStreams.from_frame(where)
    tables = analyze_tokens(s, 16, tok, top=5)
    assert set(tables) == {
        "frequencies",
        "transitions",
        "entropy",
        "ngrams_2",
        "ngrams_3",
        "outliers",
    }
    freq = tables["frequencies"]
    assert freq["count"].sum() == len(train) and "decoded_return" in freq
    entropy = dict(zip(tables["entropy"]["metric"], tables["entropy"]["value"], strict=True))
    assert entropy["unigram_entropy_bits"] == pytest.approx(4.0, abs=0.01)  # equal bins
    out = tables["outliers"]
    assert set(out["reason"]) <= {"extreme", "rare", "rare, extreme"}
    assert (out["z"].abs() > 3).all()  # equal bins: none rare, only the extreme tails
    rare = outlier_tokens(streams_of([[0] * 50 + [1]]), 4)
    assert rare["token"].tolist() == [2, 3, 1]  # never seen first, then the rarest seen
