"""Trailing-window kernels on packed (T, N) arrays.

See `_core.PackedLayout`: rows are a symbol's own bars in time order, columns are symbols.
Every kernel works down axis 0 only.

Semantics match pandas ``rolling(n)`` with the default ``min_periods=n``: the value at row r uses
rows r-n+1..r; it is NaN when the window holds a NaN or when r < start + n - 1 (warm-up), where
``start`` is the first row the input is defined on (1 for a return, whose row 0 is a placeholder).

How:
- window reductions (sum, max, min) use doubling (`sliding`): about 2 log2(n) whole-array
  operations per window length, each reading only the window's own rows. No prefix sums, so no
  rounding carried in from older bars, and a NaN spoils exactly the windows that hold it.
- second and higher moments are taken about an anchor (the first value of a chunk of a few
  hundred rows, per symbol): the "shifted data" algorithm. Without it a 20-bar variance of a
  price near 60,000 from raw sums of x**2 loses ~6 digits to cancellation.
- windows whose values are all identical get a variance of exactly 0 (as pandas does), so
  z-scores over them become NaN instead of rounding noise divided by rounding noise.
- exponential means: an IIR filter (scipy.signal.lfilter) truncated to a finite window by
  subtracting the part older than the window, so the declared lookback holds (up to rounding).
- order statistics (quantiles, percentile rank, position of the max / min) compare or sort each
  window's own values: exact. Quantiles sort windows of a row chunk (``sliding_window_view``),
  the rank takes one comparison pass per window offset, the arg-max doubles like `sliding`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# moments are anchored afresh every chunk of about this many cells (rows x symbols; each chunk
# re-reads the n-1 rows before it): local anchors, and temporaries small enough to stay in cache
_CHUNK_CELLS = 1 << 16
# a variance below this fraction of sum((x - anchor)**2) may be rounding noise: check exactly
_NOISE = 64 * np.finfo(np.float64).eps


def lag(x: np.ndarray, k: int) -> np.ndarray:
    """Value k bars earlier: (T, N) -> (T, N), NaN on the first k rows."""
    out = np.empty_like(x)
    out[:k] = np.nan
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Return num / den, NaN where den == 0 (never inf) or either side is NaN."""
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def mask_warmup(x: np.ndarray, lookback: int) -> np.ndarray:
    """Set rows < lookback - 1 to NaN in place and return x (x must be a fresh array)."""
    x[: max(lookback - 1, 0)] = np.nan
    return x


def _spans(shape: tuple[int, ...], n: int) -> Iterator[tuple[int, int, int]]:
    """Row chunks (s, e, s0) of a (T, N) array: output rows [s, e) come from rows [s0, e)."""
    n_bars, width = shape[0], max(shape[1], 1)
    step = max(_CHUNK_CELLS // width, 4 * n, 64)
    for s in range(0, n_bars, step):
        yield s, min(n_bars, s + step), max(0, s - n + 1)


def sliding(x: np.ndarray, n: int, op: np.ufunc = np.add) -> np.ndarray:
    """Reduce each trailing window of n rows with ``op`` (add, maximum, logical_and ...).

    Doubling: blocks of 2, 4, 8 ... rows are each one whole-array ``op`` of two half blocks, and a
    window of n rows joins the blocks of n's binary digits: about 2 log2(n) array operations,
    each reading only the window's own rows (a NaN spoils exactly the windows that hold it, as
    in pandas; nothing outside the window enters, not even through rounding).

    Args:
        x: (L, N) array.
        n: Window length, >= 1.
        op: Associative binary ufunc.

    Returns:
        (L, N) array of x's dtype (float: NaN, bool: False on the first n - 1 rows).
    """
    n_rows = x.shape[0]
    out = np.empty_like(x)
    out[: n - 1] = np.nan if out.dtype.kind == "f" else 0
    m = n_rows - n + 1  # number of complete windows
    if m <= 0:
        return out
    acc = out[n - 1 :]  # window starting at row j ends at row j + n - 1
    block, size, offset, started = x, 1, 0, False
    while size <= n:
        if n & size:  # this binary digit of n: join the block starting after those joined so far
            part = block[offset : offset + m]
            if started:
                op(acc, part, out=acc)
            else:
                acc[...] = part
                started = True
            offset += size
        if 2 * size <= n:
            block = op(block[:-size], block[size:])  # blocks of 2 * size rows
        size *= 2
    return out


def _anchored_var(
    xe: np.ndarray, d: np.ndarray, s1: np.ndarray, n: int, lead: int, ddof: int
) -> np.ndarray:
    """Variance of each window from anchored sums, with exact zeros for constant windows.

    Args:
        xe: (L, N) chunk values, for the constant-window check.
        d: (L, N) xe minus its anchor.
        s1: (L - lead, N) window sums of d for the chunk's output rows.
        n: Window length.
        lead: First output row of the chunk (rows before it only feed windows).
        ddof: Delta degrees of freedom of the variance.
    """
    s2 = sliding(d * d, n)[lead:]
    var = s2 - s1 * s1 / n  # n * population variance
    np.maximum(var, 0.0, out=var)
    maybe_const = var <= _NOISE * s2  # NaN compares False
    if maybe_const.any():  # rare: confirm exactly, only then pay for it
        same = np.zeros(xe.shape, dtype=bool)
        np.equal(xe[1:], xe[:-1], out=same[1:])  # same[i]: x[i] == x[i-1]
        const = sliding(same, n - 1, np.logical_and)[lead:] if n > 1 else maybe_const
        var[maybe_const & const] = 0.0
    var /= n - ddof
    return var


def _anchor(xe: np.ndarray) -> np.ndarray:
    """(N,) per-symbol shift for a chunk: its first value (0 where that is NaN)."""
    return np.nan_to_num(xe[0], nan=0.0, posinf=0.0, neginf=0.0)


def rolling_sum(x: np.ndarray, n: int, *, start: int = 0) -> np.ndarray:
    """Trailing n-bar sum, (T, N) -> (T, N)."""
    return mask_warmup(sliding(x, n), start + n)


def rolling_mean(x: np.ndarray, n: int, *, start: int = 0) -> np.ndarray:
    """Trailing n-bar mean, (T, N) -> (T, N)."""
    out = rolling_sum(x, n, start=start)
    out /= n
    return out


def rolling_mean_var(
    x: np.ndarray, n: int, *, ddof: int = 1, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Trailing n-bar mean and variance (``ddof=1`` like pandas), both (T, N)."""
    mean, var = np.empty_like(x), np.empty_like(x)
    for s, e, s0 in _spans(x.shape, n):
        xe = x[s0:e]
        anchor = _anchor(xe)  # moments are shift-invariant
        d = xe - anchor
        s1 = sliding(d, n)[s - s0 :]
        mean[s:e] = s1 / n + anchor
        var[s:e] = _anchored_var(xe, d, s1, n, s - s0, ddof)
    return mask_warmup(mean, start + n), mask_warmup(var, start + n)


def rolling_std(x: np.ndarray, n: int, *, ddof: int = 1, start: int = 0) -> np.ndarray:
    """Trailing n-bar standard deviation (``ddof=1``), (T, N) -> (T, N)."""
    return np.sqrt(rolling_mean_var(x, n, ddof=ddof, start=start)[1])


def rolling_corr(x: np.ndarray, y: np.ndarray, n: int, *, start: int = 0) -> np.ndarray:
    """Trailing n-bar Pearson correlation of x and y; NaN where either is constant."""
    out = np.empty_like(x)
    for s, e, s0 in _spans(x.shape, n):
        lead = s - s0
        xe, ye = x[s0:e], y[s0:e]
        dx, dy = xe - _anchor(xe), ye - _anchor(ye)
        sx, sy = sliding(dx, n)[lead:], sliding(dy, n)[lead:]
        vx = _anchored_var(xe, dx, sx, n, lead, 0)
        vy = _anchored_var(ye, dy, sy, n, lead, 0)
        cov = (sliding(dx * dy, n)[lead:] - sx * sy / n) / n
        out[s:e] = safe_div(cov, np.sqrt(vx * vy))
    return mask_warmup(out, start + n)


def rolling_skew_kurt(x: np.ndarray, n: int, *, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Trailing n-bar sample skewness and excess kurtosis with pandas' bias corrections.

    NaN where the window's population variance is <= 1e-14 (pandas' threshold) or zero.
    """
    skew, kurt = np.empty_like(x), np.empty_like(x)
    for s, e, s0 in _spans(x.shape, n):
        lead = s - s0
        xe = x[s0:e]
        d = xe - _anchor(xe)
        s1 = sliding(d, n)[lead:]
        b = _anchored_var(xe, d, s1, n, lead, 0)  # population variance
        a = s1 / n  # mean of d
        a2 = a * a
        d2 = d * d
        # central moments from raw ones (pandas' formulas); explicit products: ** is slow
        c = sliding(d2 * d, n)[lead:] / n - a * (a2 + 3.0 * b)
        dd = sliding(d2 * d2, n)[lead:] / n - a2 * (a2 + 6.0 * b) - 4.0 * c * a
        b[b <= 1e-14] = np.nan  # pandas: (near-)constant window -> NaN
        b_sqrt = np.sqrt(b)
        skew[s:e] = c / (b * b_sqrt) * (np.sqrt(n * (n - 1.0)) / (n - 2.0))
        kurt[s:e] = (dd / (b * b) * (n * n - 1.0) - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0))
    return mask_warmup(skew, start + n), mask_warmup(kurt, start + n)


def rolling_slope(y: np.ndarray, n: int, *, start: int = 0) -> np.ndarray:
    """OLS slope of y on the bar number over the trailing n bars, in y-units per bar."""
    out = np.empty_like(y)
    den = n * (n * n - 1.0) / 12.0  # sum over the window of (k - mean k)**2
    for s, e, s0 in _spans(y.shape, n):
        lead = s - s0
        ye = y[s0:e]
        d = ye - _anchor(ye)
        k = np.arange(ye.shape[0], dtype=np.float64)[:, None]  # chunk-local bar number
        sy = sliding(d, n)[lead:]
        sky = sliding(k * d, n)[lead:]
        k_mean = k[lead:] - (n - 1) / 2.0  # mean bar number of each window
        out[s:e] = (sky - k_mean * sy) / den
    return mask_warmup(out, start + n)


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    """Trailing n-bar maximum, (T, N) -> (T, N); NaN if the window holds a NaN."""
    return sliding(x, n, np.maximum)


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    """Trailing n-bar minimum, (T, N) -> (T, N); NaN if the window holds a NaN."""
    return sliding(x, n, np.minimum)


def ema_window(span: int, cap: int = 252) -> int:
    """Bars an exponential mean of this span looks at: 3 * span, at most ``cap``."""
    return min(3 * span, cap)


def window_ema(x: np.ndarray, span: int, window: int, *, start: int = 0) -> np.ndarray:
    """Exponentially weighted mean over the trailing ``window`` bars only.

    Weights ``w**k`` for k = 0..window-1 bars back, w = 1 - 2 / (span + 1), normalised to sum to 1
    (pandas ``ewm(span).mean()`` with ``adjust=True`` applied to the window's bars alone).

    Args:
        x: (T, N), finite from row ``start`` on (a NaN there would spoil every later value of
            its column: the scan carries it; prices of a validated panel never are NaN).
        span: EMA span.
        window: Bars of memory; the value at row r does not depend on rows < r - window + 1.
        start: First row x is defined on; earlier rows are ignored.
    """
    from scipy.signal import lfilter  # lazy: scipy.signal takes ~0.5 s to import

    w = 1.0 - 2.0 / (span + 1.0)
    if start:
        x = x.copy()
        x[:start] = 0.0
    # s[r] = x[r] + w * s[r-1]: the untruncated exponential sum, one scan down each column
    s = lfilter([1.0], [1.0, -w], x, axis=0)
    w_n = w**window
    s[window:] -= w_n * s[:-window]  # drop bars older than the window (RHS is a temporary)
    s *= (1.0 - w) / (1.0 - w_n)
    return mask_warmup(s, start + window)


def rolling_mean_abs_dev(x: np.ndarray, n: int) -> np.ndarray:
    """Mean over the trailing n bars of |x - mean of those n bars| (CCI's mean deviation)."""
    mean = rolling_mean(x, n)
    n_bars = x.shape[0]
    acc = np.zeros_like(x)
    if n_bars < n:
        return mask_warmup(acc, n)
    tmp = np.empty((max(n_bars - n + 1, 0), x.shape[1]))
    for k in range(n):  # loop over window offsets, each a whole-array op
        np.subtract(x[n - 1 - k : n_bars - k], mean[n - 1 :], out=tmp)
        np.abs(tmp, out=tmp)
        acc[n - 1 :] += tmp
    acc /= n
    return mask_warmup(acc, n)


# ----------------------------------------------------------------- order statistics of windows
# The kernels below compare or sort each window's own values, so they are exact (no rounding
# carried between bars). Like pandas ``rolling(n)`` they give NaN for a window holding a NaN.

# cells (windows x window length) sorted at a time: the sorted copy stays in cache
_SORT_CELLS = 1 << 17
Pair = tuple[np.ndarray, np.ndarray]  # (values, row numbers) of a block's extremes


def _window_has_nan(x: np.ndarray, n: int) -> np.ndarray | None:
    """(T, N) True where the trailing n-bar window holds a NaN; None when x has no NaN."""
    missing = np.isnan(x)
    if not missing.any():  # the common case (prices of a validated panel): no extra pass
        return None
    return sliding(missing, n, np.logical_or)


def _finish(out: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """NaN on the warm-up rows and on windows holding a NaN; returns out."""
    has_nan = _window_has_nan(x, n)
    if has_nan is not None:
        out[has_nan] = np.nan
    return mask_warmup(out, n)


def rolling_quantiles(x: np.ndarray, n: int, qs: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Trailing n-bar quantiles, linearly interpolated (pandas ``rolling(n).quantile(q)``).

    The q-quantile of a window sorted as v_0 <= ... <= v_(n-1) sits at position p = q (n - 1):
    v_floor(p) + (p - floor(p)) (v_(floor(p)+1) - v_floor(p)). Each window is sorted once for
    all the requested quantiles.

    Args:
        x: (T, N) array.
        n: Window length, >= 1.
        qs: Quantile levels in [0, 1].

    Returns:
        One (T, N) array per level; NaN on the first n - 1 rows and where a window holds a NaN.
    """
    n_rows = x.shape[0]
    outs = tuple(np.full_like(x, np.nan) for _ in qs)
    step = max(1, _SORT_CELLS // (n * max(x.shape[1], 1)))  # output rows per chunk
    for s in range(n - 1, n_rows, step):
        e = min(n_rows, s + step)
        # (e - s, N, n): the windows ending at rows s..e-1, sorted along their last axis
        ordered = np.sort(sliding_window_view(x[s - n + 1 : e], n, axis=0), axis=-1)
        for q, out in zip(qs, outs, strict=True):
            pos = q * (n - 1)
            lo = min(int(pos), n - 1)
            value = ordered[..., lo]
            if pos > lo:
                value = value + (pos - lo) * (ordered[..., lo + 1] - value)
            out[s:e] = value
    for out in outs:
        _finish(out, x, n)
    return outs


def rolling_rank_pct(x: np.ndarray, n: int) -> np.ndarray:
    """Percentile rank of each bar's value among its trailing n bars (itself included).

    pandas ``rolling(n).rank(pct=True)``: (bars below + (bars equal, itself included, + 1) / 2)
    / n, so ties share their mean rank; in [1/n, 1]. One comparison pass per window offset.

    Returns:
        (T, N); NaN on the first n - 1 rows and where a window holds a NaN.
    """
    out = np.full_like(x, np.nan)
    m = x.shape[0] - n + 1  # complete windows
    if m <= 0:
        return out
    current = x[n - 1 :]  # (m, N): the bar each window ends at
    below, equal = np.zeros_like(current), np.zeros_like(current)
    hit = np.empty(current.shape, dtype=bool)
    for k in range(n):  # window offset k: rows k..k+m-1 are each window's k-th bar
        below += np.less(x[k : k + m], current, out=hit)
        equal += np.equal(x[k : k + m], current, out=hit)
    out[n - 1 :] = (below + 0.5 * (equal + 1.0)) / n
    return _finish(out, x, n)


def rolling_argext(
    x: np.ndarray, windows: tuple[int, ...], *, largest: bool
) -> tuple[np.ndarray, ...]:
    """1-based position of each trailing window's max (or min), counted from its oldest bar.

    numpy's ``argmax() + 1`` on each window: n means the current bar, 1 the oldest; ties go to
    the oldest bar (first occurrence). Doubling, as in `sliding`, on (value, row) pairs: a newer
    block's extreme replaces an older one's only when strictly better, an associative rule, so a
    window is the join of the blocks of n's binary digits, oldest first. The blocks are built
    once for all the window lengths.

    Args:
        x: (T, N) array.
        windows: Window lengths, each >= 1.
        largest: True for the maximum, False for the minimum.

    Returns:
        One (T, N) float array per window length, in [1, n]; NaN on the first n - 1 rows and
        where a window holds a NaN.
    """
    n_rows = x.shape[0]
    better = np.greater if largest else np.less

    def join(old: Pair, new: Pair) -> Pair:
        take = better(new[0], old[0])  # strict: a tie keeps the older bar
        return np.where(take, new[0], old[0]), np.where(take, new[1], old[1])

    # levels[j]: (extreme, its row) of the 2**j rows starting at each row
    rows = np.broadcast_to(np.arange(n_rows, dtype=np.float64)[:, None], x.shape)
    levels: list[Pair] = [(x, rows)]
    while 2 ** len(levels) <= max(windows):
        size, (v, r) = 2 ** (len(levels) - 1), levels[-1]
        levels.append(join((v[:-size], r[:-size]), (v[size:], r[size:])))
    outs = []
    for n in windows:
        out = np.full_like(x, np.nan)
        m = n_rows - n + 1  # complete windows
        acc: Pair | None = None
        offset = 0
        for j, (v, r) in enumerate(levels):
            if m > 0 and n & (1 << j):  # join the block right after those joined so far
                part = (v[offset : offset + m], r[offset : offset + m])
                acc = part if acc is None else join(acc, part)
                offset += 1 << j
        if acc is not None:
            # row of the extreme -> 1-based position in its window (which starts at row i)
            out[n - 1 :] = acc[1] - np.arange(m, dtype=np.float64)[:, None] + 1.0
        outs.append(_finish(out, x, n))
    return tuple(outs)
