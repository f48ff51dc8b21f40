"""Statistics of token streams: n-gram baselines, frequencies, transitions, entropy, outliers.

- Baselines score the validation targets of :class:`~alphaforge.models.token_streams.TokenStreams`
  with training-token frequencies (unigram) or a first-order Markov chain (bigram), with the
  same keys and targets as :func:`~alphaforge.models.gpt_forecaster.evaluate_tokens`: the bar a
  GPT must clear.
- Analysis tables (what ``alphaforge gpt analyze`` writes): token frequencies with decoded
  returns, the transition matrix, entropy summary, frequent n-grams and outlier tokens.

Shapes: V vocabulary, m scored targets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigError
from alphaforge.models.token_streams import TokenStreams
from alphaforge.models.tokenizer import ReturnTokenizer, codebook_usage

__all__ = [
    "analyze_tokens",
    "bigram_baseline",
    "outlier_tokens",
    "token_entropy",
    "token_frequencies",
    "top_ngrams",
    "transition_matrix",
    "unigram_baseline",
]


def _score(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Cross-entropy (nats), perplexity, top-1 and top-5 accuracy of ``(m, V)`` probabilities."""
    m = len(targets)
    p_true = probs[np.arange(m), targets]
    ce = float(-np.mean(np.log(np.maximum(p_true, 1e-12))))
    # rank of the target = number of tokens with a strictly higher probability
    rank = (probs > p_true[:, None]).sum(1)
    return {
        "cross_entropy": ce,
        "perplexity": float(np.exp(ce)),
        "accuracy": float(np.mean(rank == 0)),
        "top5_accuracy": float(np.mean(rank < 5)),
        "n_tokens": int(m),
    }


def unigram_baseline(
    train: TokenStreams, valid: TokenStreams, vocab_size: int, alpha: float = 1.0
) -> dict[str, float]:
    """Score the training token frequencies (add-``alpha`` smoothed) on the valid targets.

    Returns:
        ``cross_entropy`` (nats/token), ``perplexity``, ``accuracy``, ``top5_accuracy``,
        ``n_tokens``.
    """
    p = np.bincount(train.tokens, minlength=vocab_size)[:vocab_size] + alpha
    targets = valid.tokens[valid.target_mask()]
    return _score(np.broadcast_to(p / p.sum(), (len(targets), vocab_size)), targets)


def bigram_baseline(
    train: TokenStreams, valid: TokenStreams, vocab_size: int, alpha: float = 1.0
) -> dict[str, float]:
    """Score a first-order Markov chain (transition matrix from training, add-``alpha``) on the
    valid targets; a document's first token falls back to the unigram frequencies.

    Returns:
        As :func:`unigram_baseline`.
    """
    V = vocab_size
    uni = np.bincount(train.tokens, minlength=V)[:V] + alpha
    trans = transition_matrix(train, V, normalize=False).to_numpy(np.float64) + alpha
    table = np.vstack([trans / trans.sum(1, keepdims=True), uni / uni.sum()])  # row V: no prev
    mask = valid.target_mask()
    prev = valid.previous()[mask]
    return _score(table[np.where(prev < 0, V, prev)], valid.tokens[mask])


# ============================================================================ analysis
def token_frequencies(
    streams: TokenStreams, vocab_size: int, tokenizer: ReturnTokenizer | None = None
) -> pd.DataFrame:
    """Count and share of every token; with a tokenizer also its decoded return (sum over the
    patch, return units). Columns ``token, count, share[, decoded_return]``."""
    counts = np.bincount(streams.tokens, minlength=vocab_size)[:vocab_size]
    out = pd.DataFrame(
        {"token": np.arange(vocab_size), "count": counts, "share": counts / max(1, counts.sum())}
    )
    if tokenizer is not None:
        out["decoded_return"] = tokenizer.decode_returns(np.arange(vocab_size)).sum(1)
    return out


def transition_matrix(
    streams: TokenStreams, vocab_size: int, normalize: bool = True
) -> pd.DataFrame:
    """``(V, V)`` counts (or row-normalised probabilities) of token ``j`` following ``i``,
    within documents only. Rows never seen stay 0 when normalised."""
    V = vocab_size
    prev = streams.previous()
    ok = prev >= 0
    counts = np.bincount(prev[ok] * V + streams.tokens[ok], minlength=V * V)[: V * V]
    m = counts.reshape(V, V).astype(np.float64)
    if normalize:
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
    return pd.DataFrame(
        m, index=pd.Index(range(V), name="from"), columns=pd.Index(range(V), name="to")
    )


def token_entropy(streams: TokenStreams, vocab_size: int) -> pd.DataFrame:
    """Entropy summary (bits): unigram entropy and perplexity, conditional entropy of a token
    given the previous one, codebook usage. Columns ``metric, value``."""
    counts = np.bincount(streams.tokens, minlength=vocab_size)[:vocab_size].astype(np.float64)
    p = counts / max(1, counts.sum())
    h1 = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    joint = transition_matrix(streams, vocab_size, normalize=False).to_numpy()
    pj = joint / max(1.0, joint.sum())
    pr = pj.sum(1, keepdims=True)
    nz = pj > 0
    h_cond = float(-(pj[nz] * np.log2((pj / np.maximum(pr, 1e-300))[nz])).sum())
    rows = {
        "unigram_entropy_bits": h1,
        "unigram_perplexity": 2**h1,
        "conditional_entropy_bits": h_cond,
        "conditional_perplexity": 2**h_cond,
        "max_entropy_bits": float(np.log2(vocab_size)),
        "codebook_usage": codebook_usage(streams.tokens, vocab_size),
        "n_tokens": float(len(streams.tokens)),
    }
    return pd.DataFrame({"metric": list(rows), "value": list(rows.values())})


def top_ngrams(streams: TokenStreams, n: int, top: int = 20) -> pd.DataFrame:
    """Most frequent n-grams inside documents. Columns ``ngram`` ("a b c"), ``count``, ``share``.

    Raises:
        ConfigError: ``n < 1``.
    """
    if n < 1:
        raise ConfigError(f"n-gram length must be >= 1, got {n}")
    t, doc = streams.tokens, streams.doc_ids()
    m = len(t) - n + 1
    starts = np.flatnonzero(doc[:m] == doc[n - 1 :]) if m > 0 else np.zeros(0, dtype=np.int64)
    if len(starts) == 0:
        return pd.DataFrame({"ngram": [], "count": [], "share": []})
    grams = t[starts[:, None] + np.arange(n)]  # (m, n)
    uniq, counts = np.unique(grams, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return pd.DataFrame(
        {
            "ngram": [" ".join(map(str, g)) for g in uniq[order]],
            "count": counts[order],
            "share": counts[order] / len(starts),
        }
    )


def analyze_tokens(
    streams: TokenStreams,
    vocab_size: int,
    tokenizer: ReturnTokenizer | None = None,
    *,
    top: int = 20,
) -> dict[str, pd.DataFrame]:
    """Every token table at once: ``frequencies``, ``transitions``, ``entropy``, ``ngrams_2``,
    ``ngrams_3`` and ``outliers`` (see the functions of the same names)."""
    return {
        "frequencies": token_frequencies(streams, vocab_size, tokenizer),
        "transitions": transition_matrix(streams, vocab_size),
        "entropy": token_entropy(streams, vocab_size),
        "ngrams_2": top_ngrams(streams, 2, top),
        "ngrams_3": top_ngrams(streams, 3, top),
        "outliers": outlier_tokens(streams, vocab_size, tokenizer),
    }


def outlier_tokens(
    streams: TokenStreams,
    vocab_size: int,
    tokenizer: ReturnTokenizer | None = None,
    *,
    z: float = 3.0,
    rare: float = 0.1,
) -> pd.DataFrame:
    """Tokens that are rare (share below ``rare / V``) or, with a tokenizer, decode to an extreme
    return (more than ``z`` frequency-weighted standard deviations from the mean).

    Returns:
        Columns ``token, count, share, reason`` (plus ``decoded_return, z`` with a tokenizer),
        most extreme first.
    """
    freq = token_frequencies(streams, vocab_size, tokenizer)
    is_rare = freq["share"] < rare / vocab_size
    flagged = is_rare.copy()
    if tokenizer is not None:
        w = freq["share"].to_numpy()
        r = freq["decoded_return"].to_numpy()
        mu = float((w * r).sum())
        sd = float(np.sqrt((w * (r - mu) ** 2).sum())) or 1.0
        freq["z"] = (r - mu) / sd
        flagged |= freq["z"].abs() > z
    reason = np.where(is_rare, "rare", "")
    if tokenizer is not None:
        extreme = (freq["z"].abs() > z).to_numpy()
        reason = np.where(extreme & is_rare, "rare, extreme", np.where(extreme, "extreme", reason))
    freq["reason"] = reason
    out = freq[flagged.to_numpy()]
    key = out["z"].abs() if tokenizer is not None else -out["share"]
    return out.loc[key.sort_values(ascending=False, kind="stable").index].reset_index(drop=True)
