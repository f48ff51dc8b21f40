"""Matplotlib figures of the report, returned as ``data:image/png;base64,...`` URIs.

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the Agg canvas directly,
so nothing touches pyplot's global state or the user's backend. Styling is explicit per axes (no
``rcParams`` changes) and PNGs carry no software/date metadata, so the same inputs always give
byte-identical images.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alphaforge.report.analysis import quantile_name, spread_label

DPI = 110
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
GREY = "#7f7f7f"
FONT = 9


def plain(text: object) -> str:
    """``text`` for a matplotlib label: ``$`` escaped so names never switch on mathtext."""
    return str(text).replace("$", r"\$")


def color(i: int) -> str:
    """The ``i``-th colour of the report's palette (cycles)."""
    return PALETTE[i % len(PALETTE)]


def new_figure(
    width: float, height: float, nrows: int = 1, ncols: int = 1, **kw: object
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of ``width x height`` inches and its (nrows, ncols) axes."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)  # type: ignore[arg-type]
    for ax in axes.flat:
        style(ax)
    return fig, axes


def style(ax: Axes) -> None:
    """Light grid, no top/right spines, small ticks."""
    ax.grid(True, color="#e6e6e6", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#999999")
    ax.tick_params(labelsize=FONT - 1, color="#999999")


def date_axis(ax: Axes) -> None:
    """Concise date ticks on the x axis."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def legend(ax: Axes, **kw: object) -> None:
    """Small frameless legend inside ``ax``, only if something is labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=FONT - 1, frameon=False, **kw)  # type: ignore[arg-type]


def fig_legend(fig: Figure, ax: Axes, max_cols: int = 6) -> None:
    """Legend of ``ax``'s lines below the whole figure, where it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            fontsize=FONT - 1,
            frameon=False,
            ncols=min(max_cols, len(handles)),
        )


def to_uri(fig: Figure) -> str:
    """Render ``fig`` with Agg to a PNG data URI (no metadata, fixed dpi: deterministic)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _x(index: pd.Index) -> np.ndarray:
    return np.asarray(index.to_numpy())


def equity_plot(
    curves: Mapping[str, pd.DataFrame], baselines: set[str], colors: Mapping[str, str]
) -> str:
    """Side-by-side equity curves before and after costs, one line per model.

    Args:
        curves: model -> frame indexed by timestamp with ``gross`` and ``net`` equity (start 1).
        baselines: Models drawn dashed, as references.
        colors: model -> line colour.

    Returns:
        PNG data URI.
    """
    fig, axes = new_figure(11, 4.2, 1, 2, sharey=True)
    for j, (col, title) in enumerate(
        (("gross", "Gross (before costs)"), ("net", "Net (after costs)"))
    ):
        ax = axes[0, j]
        for model, eq in curves.items():
            base = model in baselines
            ax.plot(
                _x(eq.index),
                eq[col].to_numpy(),
                color=colors[model],
                label=plain(model),
                linewidth=1.0 if base else 1.6,
                linestyle="--" if base else "-",
                alpha=0.8 if base else 1.0,
            )
        ax.axhline(1.0, color=GREY, linewidth=0.8)
        ax.set_title(title, fontsize=FONT + 1)
        date_axis(ax)
    axes[0, 0].set_ylabel("equity (start = 1)", fontsize=FONT)
    fig_legend(fig, axes[0, 1], max_cols=8)
    return to_uri(fig)


def drawdown_plot(
    drawdowns: Mapping[str, pd.Series], baselines: set[str], colors: Mapping[str, str]
) -> str:
    """Net-of-cost drawdown of each model over time, in percent (baselines dashed)."""
    fig, axes = new_figure(11, 3.2)
    ax = axes[0, 0]
    for model, dd in drawdowns.items():
        base = model in baselines
        ax.plot(
            _x(dd.index),
            dd.to_numpy() * 100,
            color=colors[model],
            label=plain(model),
            linewidth=1.0 if base else 1.4,
            linestyle="--" if base else "-",
        )
    ax.set_ylabel("drawdown, net (%)", fontsize=FONT)
    ax.set_title("Drawdown from the running peak (after costs)", fontsize=FONT + 1)
    date_axis(ax)
    fig_legend(fig, ax, max_cols=8)
    return to_uri(fig)


def ic_plot(series: Mapping[str, pd.DataFrame], colors: Mapping[str, str], window: int) -> str:
    """Per-timestamp IC and rank IC (thin) with their trailing mean (bold); one row per model.

    Args:
        series: model -> frame indexed by timestamp with ``ic``, ``rank_ic``, ``ic_roll`` and
            ``rank_ic_roll``.
        colors: model -> line colour.
        window: Rolling window in bars (for the legend).

    Returns:
        PNG data URI.
    """
    n = len(series)
    fig, axes = new_figure(11, 2.5 * n + 0.3, n, 2, sharex=True, sharey=True)
    for i, (model, frame) in enumerate(series.items()):
        for j, (col, name) in enumerate((("ic", "IC"), ("rank_ic", "Rank IC"))):
            ax = axes[i, j]
            x, v = _x(frame.index), frame[col].to_numpy(np.float64)
            ax.plot(x, v, color=colors[model], linewidth=0.6, alpha=0.35, label="per bar")
            ax.plot(
                x,
                frame[f"{col}_roll"].to_numpy(),
                color=colors[model],
                linewidth=1.8,
                label=f"{window}-bar mean",
            )
            ax.axhline(0.0, color=GREY, linewidth=0.8)
            ok = v[np.isfinite(v)]
            mean = float(ok.mean()) if ok.size else math.nan
            sd = float(ok.std(ddof=1)) if ok.size > 1 else math.nan
            ir = mean / sd if sd > 0 else math.nan
            ax.set_title(
                f"{plain(model)}: {name}  (mean {mean:.3f}, IR {ir:.2f})", fontsize=FONT + 1
            )
            date_axis(ax)
    fig_legend(fig, axes[0, 1])
    return to_uri(fig)


def quantile_plot(table: pd.DataFrame, model: str, label_units: str) -> str:
    """Cumulated mean label per prediction quantile, lowest (red) to highest (green).

    Args:
        table: From :func:`alphaforge.report.analysis.quantile_returns`.
        model: Model name for the title.
        label_units: Y-axis label.

    Returns:
        PNG data URI.
    """
    fig, axes = new_figure(11, 4.2)
    ax = axes[0, 0]
    cols = list(table.columns)
    shades = ("#c0392b", "#e67e22", "#95a5a6", "#5dade2", "#27ae60")
    palette = shades if len(cols) == 5 else [color(i) for i in range(len(cols))]
    cum = table.fillna(0.0).cumsum()
    x = _x(cum.index)
    for i, col in enumerate(cols):
        note = " (lowest)" if i == 0 else " (highest)" if i == len(cols) - 1 else ""
        ax.plot(x, cum[col].to_numpy(), color=palette[i], linewidth=1.6, label=col + note)
    spread = (table[cols[-1]] - table[cols[0]]).fillna(0.0).cumsum()
    ax.plot(
        x,
        spread.to_numpy(),
        color="black",
        linewidth=1.2,
        linestyle="--",
        label=spread_label(len(cols)),
    )
    ax.axhline(0.0, color=GREY, linewidth=0.8)
    ax.set_ylabel(label_units, fontsize=FONT)
    ax.set_title(
        f"{plain(model)}: cumulative mean label by prediction {quantile_name(len(cols))} (test)",
        fontsize=FONT + 1,
    )
    date_axis(ax)
    fig_legend(fig, ax, max_cols=6)
    return to_uri(fig)


def scatter_plot(x: np.ndarray, y: np.ndarray, model: str, n_total: int) -> str:
    """Predicted (x) vs realised (y) with a least-squares line; axes clipped to 0.5-99.5 pct."""
    fig, axes = new_figure(6.4, 5.0)
    ax = axes[0, 0]
    ax.scatter(x, y, s=5, alpha=0.25, color=PALETTE[0], linewidths=0, rasterized=False)
    corr = (
        float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 0 and y.std() > 0 else math.nan
    )
    if len(x) > 2 and x.std() > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(*np.percentile(x, [0.5, 99.5]), 50)
        ax.plot(
            grid,
            slope * grid + intercept,
            color="#d62728",
            linewidth=1.4,
            label=f"least squares (slope {slope:.2f})",
        )
    for arr, setter in ((x, ax.set_xlim), (y, ax.set_ylim)):
        lo, hi = np.percentile(arr, [0.5, 99.5]) if len(arr) else (0.0, 1.0)
        pad = (hi - lo) * 0.05 or 1e-6
        setter(lo - pad, hi + pad)
    ax.axhline(0.0, color=GREY, linewidth=0.6)
    ax.axvline(0.0, color=GREY, linewidth=0.6)
    ax.set_xlabel("predicted", fontsize=FONT)
    ax.set_ylabel("realised", fontsize=FONT)
    shown = f"{len(x):,} of {n_total:,} points" if n_total > len(x) else f"{len(x):,} points"
    ax.set_title(
        f"{plain(model)}: predicted vs realised (test, {shown}, corr {corr:.3f})", fontsize=FONT
    )
    legend(ax, loc="upper left")
    return to_uri(fig)


def bar_plot(stats: pd.DataFrame, title: str, xlabel: str, bar_color: str) -> str:
    """Horizontal bars of ``stats["mean"]`` (largest on top) with ``stats["std"]`` error bars."""
    n = len(stats)
    fig, axes = new_figure(6.4, 0.24 * n + 1.0)
    ax = axes[0, 0]
    pos = np.arange(n)[::-1]
    ax.barh(
        pos,
        stats["mean"].to_numpy(),
        xerr=stats["std"].to_numpy(),
        color=bar_color,
        alpha=0.85,
        error_kw={"elinewidth": 0.8, "ecolor": "#555555", "capsize": 2},
    )
    ax.set_yticks(pos, [plain(f) for f in stats.index], fontsize=FONT - 1)
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_title(plain(title), fontsize=FONT + 1)
    ax.grid(False, axis="y")
    return to_uri(fig)


def history_plot(frame: pd.DataFrame, model: str) -> str:
    """Train (solid) and valid (dashed) loss per epoch, one colour per fold."""
    fig, axes = new_figure(6.4, 3.6)
    ax = axes[0, 0]
    for i, (fold, g) in enumerate(frame.groupby("fold", sort=True)):
        g = g.sort_values("epoch", kind="stable")
        ep = g["epoch"].to_numpy()
        ax.plot(
            ep,
            pd.to_numeric(g["train_loss"], errors="coerce").to_numpy(),
            color=color(i),
            linewidth=1.4,
            label=f"fold {fold}",
        )
        ax.plot(
            ep,
            pd.to_numeric(g["valid_loss"], errors="coerce").to_numpy(),
            color=color(i),
            linewidth=1.4,
            linestyle="--",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch", fontsize=FONT)
    ax.set_ylabel("loss", fontsize=FONT)
    ax.set_title(f"{plain(model)}: training curves (solid train, dashed valid)", fontsize=FONT + 1)
    if frame["fold"].nunique() <= len(PALETTE):  # beyond that colours repeat: no legend
        fig_legend(fig, ax, max_cols=len(PALETTE))
    return to_uri(fig)


def tuning_plot(frame: pd.DataFrame, study: str, maximize: bool) -> str:
    """Objective value per trial (complete: dots, other states: grey x) and the best so far."""
    fig, axes = new_figure(6.4, 3.6)
    ax = axes[0, 0]
    frame = frame.sort_values("trial", kind="stable")
    value = pd.to_numeric(frame["value"], errors="coerce")
    done = frame["state"].astype(str).str.upper() == "COMPLETE"
    ax.scatter(frame.loc[done, "trial"], value[done], s=14, color=PALETTE[0], label="complete")
    if (~done).any():
        ax.scatter(
            frame.loc[~done, "trial"],
            value[~done],
            s=14,
            marker="x",
            color=GREY,
            label="pruned / failed",
        )
    best = value.where(done).cummax() if maximize else value.where(done).cummin()
    ax.step(
        frame["trial"].to_numpy(),
        best.ffill().to_numpy(),
        where="post",
        color="#d62728",
        linewidth=1.4,
        label="best so far",
    )
    ax.set_xlabel("trial", fontsize=FONT)
    ax.set_ylabel("objective", fontsize=FONT)
    ax.set_title(
        f"study {plain(study)}: {int(done.sum())} of {len(frame)} trials complete "
        f"({'maximize' if maximize else 'minimize'})",
        fontsize=FONT + 1,
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig_legend(fig, ax)
    return to_uri(fig)


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """Stable colour per model: its position in the report's model ranking."""
    return {m: color(i) for i, m in enumerate(models)}
