"""The report's judgement of a run: best model against best baseline, degenerate books, warnings.

- **Model against baseline.** The best model and the best baseline are each found on the test
  ranking metric and on the net Sharpe ratio; the summary says plainly when a baseline beats
  every model (a run where ``trailing_mean`` leads has found no skill).
- **Degenerate books.** A model whose test forecasts are all zero (or missing), or whose backtest
  book held no position at any bar, has a 0% drawdown and a 0% return by construction: it is
  tagged and never marked "best" in a backtest column.
- **Backtest warnings.** ``alphaforge.backtest`` records, per model and variant, why a book
  does not follow the forecasts as its settings intend (``summary["warnings"]``); they are listed
  once each, with the models they concern.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from alphaforge.report.load import RunData, as_float, get_path
from alphaforge.report.tables import RANK_KEYS, SHORT_NAMES, fmt, fmt_metric

NO_POSITIONS = "no positions"
ZERO_FORECASTS = "zero forecasts"


def degenerate_models(data: RunData) -> dict[str, str]:
    """Models whose backtest results mean nothing, with the reason shown as their tag.

    Returns:
        ``{model: "zero forecasts" | "no positions"}``: every finite test forecast is 0 (or
        there is none), or the base backtest held no position at any bar (``hit_rate`` null
        with zero turnover).
    """
    test = data.predictions[data.predictions["split"] == "test"]
    nonzero = (test["y_pred"].fillna(0.0) != 0.0).groupby(test["model"]).any()
    out = {str(m): ZERO_FORECASTS for m, any_ in nonzero.items() if not any_}
    for m, entry in data.model_entries.items():
        net = get_path(entry, "backtest", "base", "net")
        if m in out or not isinstance(net, dict) or "hit_rate" not in net:
            continue
        if net["hit_rate"] is None and as_float(net.get("avg_turnover")) == 0.0:
            out[m] = NO_POSITIONS
    return out


def backtest_warnings(data: RunData, models: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Each distinct backtest warning of the run and the models (in ``models`` order) it hit."""
    seen: dict[str, list[str]] = {}
    for m in models:
        for variant in ("base", "lagged"):
            texts = get_path(data.model_entries.get(m), "backtest", variant, "warnings")
            for text in texts if isinstance(texts, list) else []:
                hit = seen.setdefault(str(text), [])
                if m not in hit:
                    hit.append(m)
    return list(seen.items())


def warnings_html(data: RunData, models: Sequence[str], element_id: str | None = None) -> str:
    """A callout listing the backtest warnings, or '' when there is none."""
    found = backtest_warnings(data, models)
    if not found:
        return ""
    with_bt = [
        m for m in models if isinstance(get_path(data.model_entries.get(m), "backtest"), dict)
    ]
    items = []
    for text, hit in found:
        who = "every model" if set(hit) >= set(with_bt) else ", ".join(map(escape, hit))
        items.append(f'<li>{escape(text)} <span class="muted">({who})</span></li>')
    attr = f' id="{element_id}"' if element_id else ""
    return (
        f'<div class="callout warn"{attr}><b>Backtest warnings</b>: the backtest settings do '
        f"not fit this data, so these results can mislead.<ul>{''.join(items)}</ul></div>"
    )


@dataclass(frozen=True)
class _Measure:
    """One way to compare models: its name, ``get(model)``, direction and formatter."""

    name: str
    get: Callable[[str], float]
    higher: bool
    show: Callable[[float], str]

    def leader(self, models: Sequence[str]) -> tuple[str | None, float]:
        """The model with the best finite value (the first on ties), or ``(None, nan)``."""
        scored = [(m, v) for m in models if math.isfinite(v := self.get(m))]
        if not scored:
            return None, math.nan
        return (max if self.higher else min)(scored, key=lambda mv: mv[1])


def _measures(data: RunData, ranked: Sequence[str], metric: str | None) -> list[_Measure]:
    """The test ranking metric, then the net Sharpe ratio (degenerate books left out)."""
    out = []
    if metric:
        out.append(
            _Measure(
                f"test {SHORT_NAMES.get(metric, metric)}",
                lambda m: data.metric(m, "test", metric),
                dict(RANK_KEYS).get(metric, True),
                fmt_metric(metric),
            )
        )
    if any(isinstance(get_path(data.model_entries.get(m), "backtest"), dict) for m in ranked):
        skip = degenerate_models(data)

        def sharpe(m: str) -> float:
            return math.nan if m in skip else data.backtest_summary(m, "base", "net", "sharpe")

        out.append(_Measure("net Sharpe", sharpe, True, lambda v: fmt(v, "ratio")))
    return out


def contrast(
    data: RunData, ranked: Sequence[str], metric: str | None
) -> tuple[list[tuple[str, str]], str]:
    """Facts rows for the best model and the best baseline, and the verdict callout.

    Args:
        data: The run.
        ranked: Every model, best first (see :func:`alphaforge.report.tables.rank_models`).
        metric: The test metric the ranking used, or None.

    Returns:
        ``(facts, verdict)``: up to two ``(label, html)`` rows ("Best model", "Best baseline")
        naming the leader on each measure, and a ``<div class="callout ...">`` with one
        sentence per measure ('' without both a model and a baseline to compare).
    """
    measures = _measures(data, ranked, metric)
    models = [m for m in ranked if not data.is_baseline(m)]
    bases = [m for m in ranked if data.is_baseline(m)]
    facts = []
    for label, group in (("Best model", models), ("Best baseline", bases)):
        by_model: dict[str, list[str]] = {}  # leader -> "measure value", one leader per measure
        for x in measures:
            m, v = x.leader(group)
            if m is not None:
                by_model.setdefault(m, []).append(f"{escape(x.name)} {x.show(v)}")
        if by_model:
            text = "; ".join(f"<b>{escape(m)}</b> ({', '.join(p)})" for m, p in by_model.items())
            facts.append((label, text))
    sentences, lost = [], False
    for x in measures:
        (m, mv), (b, bv) = x.leader(models), x.leader(bases)
        if m is None or b is None:
            continue
        if bv != mv and x.show(bv) == x.show(mv):  # e.g. 0.0150 and 0.0150: show more digits
            x = dataclasses.replace(x, show=lambda v: f"{v:.6g}")
        if bv == mv:
            sentences.append(
                f"The best model, <b>{escape(m)}</b>, only ties the baseline <b>{escape(b)}</b> "
                f"on {escape(x.name)} ({x.show(mv)})."
            )
            lost = True
        elif (bv > mv) if x.higher else (bv < mv):
            lost = True
            sentences.append(
                f"A baseline beats every model on {escape(x.name)}: <b>{escape(b)}</b> "
                f"{x.show(bv)} against the best model, <b>{escape(m)}</b>, {x.show(mv)}."
            )
        else:
            sentences.append(
                f"<b>{escape(m)}</b> beats every baseline on {escape(x.name)}: {x.show(mv)} "
                f"against <b>{escape(b)}</b> {x.show(bv)}."
            )
    if not sentences:
        return facts, ""
    css = "callout warn" if lost else "callout ok"
    return facts, f'<div class="{css}" id="verdict">{" ".join(sentences)}</div>'
