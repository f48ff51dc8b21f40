"""The HTML report: sections, plots, escaping, offline-ness, determinism and error handling."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import DataError
from alphaforge.report import render, write_report

from .conftest import make_run_dir

CORE_SECTIONS = ("summary", "metrics", "equity", "ic", "quantiles", "scatter")
OPTIONAL_SECTIONS = ("importance", "gates", "training", "tuning")
FULL_PLOTS = {
    ("equity", None),
    ("drawdown", None),
    ("ic_over_time", None),
    ("quantile_returns", None),
    ("scatter", None),
    ("feature_importance", "lightgbm"),
    ("feature_importance", "xgboost"),
    ("gates", "lstm"),
    ("training", "lstm"),
    ("tuning", "lightgbm-rank_ic"),
}


class _Page(HTMLParser):
    """Collects element ids, plot images, every src/href and the visible text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "img":
            self.imgs.append(a)
        self.links += [str(v) for k, v in attrs if k in ("src", "href", "action") and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def plots(self) -> set[tuple[str | None, str | None]]:
        return {
            (i.get("data-plot"), i.get("data-model"))
            for i in self.imgs
            if "plot" in (i.get("class") or "").split()
        }


def _table(html: str, table_id: str) -> str:
    match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert match, table_id
    return match.group(0)


def test_every_section_and_plot_present(full_html: str) -> None:
    page = _Page(full_html)
    for sid in CORE_SECTIONS + OPTIONAL_SECTIONS:
        assert sid in page.ids, sid
    tables = {"metrics-test", "metrics-backtest", "metrics-valid", "metrics-per-fold"}
    assert tables | {"folds-table", "config", "verdict"} <= set(page.ids)
    assert page.plots() == FULL_PLOTS
    for img in page.imgs:
        assert img.get("alt"), img.get("data-plot")
        src = str(img["src"])
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_and_metrics_content(full_html: str) -> None:
    text = " ".join(_Page(full_html).text)
    for fact in (
        "report-fixture",
        "forward_return",
        "horizon 1 bar",
        "1 min 23 s",
        "2022-02-28 \u2192 2022-08-12",
        "4 + 2 baselines",
        "strategy=long_short",
    ):
        assert fact in text, fact
    test = _table(full_html, "metrics-test")
    assert '<td class="best">0.2800</td>' in test  # lightgbm's rank IC is the best
    assert '<td class="best">0.0160</td>' in test  # lowest MAE wins
    assert "Sharpe net" not in test  # backtest results have their own table
    backtest = _table(full_html, "metrics-backtest")
    assert "Sharpe net" in backtest and "Sharpe lag+1" in backtest and "Max DD net" in backtest
    assert test.count('<span class="tag">baseline</span>') == 2
    # rows ranked by test rank IC, baselines last
    order = re.findall(r'<th scope="row">([a-z_]+)', test)
    assert order == [
        "lightgbm",
        "xgboost",
        "lstm",
        "multitask_transformer",
        "trailing_mean",
        "zero",
    ]
    assert re.findall(r'<th scope="row">([a-z_]+)', backtest) == order
    assert 'class="best">\u2013' not in full_html  # a missing value is never "best"


def test_only_the_strategy_settings_are_shown(full_html: str) -> None:
    text = " ".join(_Page(full_html).text)
    settings = (
        "strategy=long_short, quantile=0.2, weighting=equal, gross=1.0, costs_bps=5.0, "
        "min_cost=0.0, delay=1, rebalance_every=1"
    )
    assert settings in text
    for foreign in ("k=10", "n_drop", "threshold", "long_only", "periods_per_year"):
        assert foreign not in text, foreign


def test_a_book_without_positions_is_never_best(full_html: str) -> None:
    """zero's 0% drawdown and 0% return are no achievement: tagged, never highlighted."""
    backtest = _table(full_html, "metrics-backtest")
    zero = re.search(r'<tr class="baseline"><th scope="row">zero(.*?)</tr>', backtest, re.S)
    assert zero and "no positions" in zero.group(1)
    assert "0.0%" in zero.group(1) and 'class="best"' not in zero.group(1)
    assert '<td class="best">-4.0%</td>' in backtest  # the shallowest drawdown with positions
    assert backtest.count("no positions") == 1


def test_summary_contrasts_best_model_and_best_baseline(full_html: str) -> None:
    assert "Best model</th><td><b>lightgbm</b> (test Rank IC 0.2800, net Sharpe 1.50)" in full_html
    assert (
        "Best baseline</th><td><b>trailing_mean</b> (test Rank IC 0.0300, net Sharpe -0.50)"
        in full_html
    )
    verdict = re.search(r'<div class="callout ok" id="verdict">(.*?)</div>', full_html, re.S)
    assert verdict and "beats every baseline on test Rank IC" in verdict.group(1)
    assert "A baseline beats" not in full_html


def test_summary_says_plainly_when_a_baseline_wins(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", optional=False)
    metrics = json.loads((run / "metrics.json").read_text())
    mean = metrics["models"]["trailing_mean"]
    mean["test"]["overall"]["rank_ic"] = 0.5
    mean["backtest"]["base"]["net"]["sharpe"] = 3.0
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = render(run)
    verdict = re.search(r'<div class="callout warn" id="verdict">(.*?)</div>', html, re.S)
    assert verdict, "a baseline win must be a warning callout"
    said = re.sub(r"<[^>]+>", "", verdict.group(1))
    assert "A baseline beats every model on test Rank IC: trailing_mean 0.5000 against the " in said
    assert "best model, lightgbm, 0.2800" in said
    assert "on net Sharpe: trailing_mean 3.00 against the best model, lightgbm, 1.50" in said
    assert "Best model</th><td><b>lightgbm</b>" in html  # still named, not hidden


def test_backtest_warnings_are_shown(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", optional=False)
    metrics = json.loads((run / "metrics.json").read_text())
    every = "top_k with k=10 >= the 4 symbols predicted holds every symbol"
    some = "sign: every prediction is above +0, so the book is long every symbol"
    for name, entry in metrics["models"].items():
        for variant in ("base", "lagged"):
            entry["backtest"][variant]["warnings"] = [every] + ([some] if name == "lstm" else [])
    metrics["backtest_spec"].update(strategy="top_k", k=10)
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = render(run)
    box = re.search(r'<div class="callout warn" id="backtest-warnings">(.*?)</div>', html, re.S)
    assert box, "the summary lists the backtest warnings"
    assert f"<li>{escape(every)} <span" in box.group(1) and "(every model)" in box.group(1)
    assert f"<li>{some} <span" in box.group(1) and "(lstm)" in box.group(1)
    assert html.count(escape(every)) == 2  # the summary and the backtest table
    assert 'href="#backtest-warnings"' in html  # the equity curves point to them
    text = " ".join(_Page(html).text)
    assert "strategy=top_k, k=10, costs_bps=5.0" in text and "quantile=" not in text


def test_quantile_labels_agree_between_chart_and_table(full_html: str, tmp_path: Path) -> None:
    assert "Q5\u2212Q1" in _table(full_html, "metrics-test")
    assert "(quintiles, Q1 lowest)" in full_html and "spread Q5\u2212Q1." in full_html
    run = make_run_dir(tmp_path / "run", optional=False)
    preds = pd.read_parquet(run / "predictions.parquet")
    preds[preds["symbol"].isin(["S00", "S01", "S02", "S03"])].to_parquet(
        run / "predictions.parquet", index=False
    )
    html = render(run)
    assert "(quartiles, Q1 lowest)" in html and "spread Q4\u2212Q1." in html
    assert "its Q4\u2212Q1 is not the metrics' Q5\u2212Q1 (quintiles)" in html


def test_missing_values_show_as_dash(full_html: str) -> None:
    test = _table(full_html, "metrics-test")
    assert "<td>\u2013</td>" in test  # top-5 hit rate of the baselines, zero's rank IC ...
    assert "ICIR" not in test.replace("Rank ICIR", "")  # null for every model: left out
    assert "Left out, no model has a value: ICIR" in full_html
    words = re.findall(r"[A-Za-z]+", " ".join(_Page(full_html).text))
    assert not {"nan", "NaN", "None", "inf", "null"} & set(words)


def test_config_text_is_escaped(full_html: str) -> None:
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; &quot;quoted&quot;" in full_html
    assert "<b>not bold</b>" not in full_html


def test_no_network_resources(full_html: str) -> None:
    page = _Page(full_html)
    for link in page.links:
        assert link.startswith(("data:image/png;base64,", "#")), link[:80]
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", full_html, re.I)
    assert "url(" not in full_html and "@import" not in full_html
    assert "<script" not in full_html and "<link" not in full_html
    assert "http://" not in full_html and "https://" not in full_html


def test_render_is_deterministic(full_run: Path, full_html: str) -> None:
    assert render(full_run) == full_html


def test_write_report_writes_report_html(full_run: Path, full_html: str, tmp_path: Path) -> None:
    path = write_report(full_run)
    assert path == full_run / "report.html"
    assert path.read_text(encoding="utf-8") == full_html
    other = write_report(full_run, tmp_path / "sub" / "r.html")
    assert other.read_text(encoding="utf-8") == full_html
    assert [p.name for p in other.parent.iterdir()] == ["r.html"]  # no temp file left behind


def test_optional_sections_are_omitted(minimal_run: Path) -> None:
    html = render(minimal_run)
    page = _Page(html)
    for sid in CORE_SECTIONS:
        assert sid in page.ids, sid
    for sid in OPTIONAL_SECTIONS:
        assert sid not in page.ids and f'href="#{sid}"' not in html, sid
    assert {p for p, _ in page.plots()} == {"ic_over_time", "quantile_returns", "scatter"}
    assert "<code>backtest.parquet</code> not present in this run" in html


@pytest.mark.parametrize("name", ["config.yaml", "metrics.json", "predictions.parquet"])
def test_missing_required_file_is_a_data_error(
    minimal_run: Path, tmp_path: Path, name: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(minimal_run, run)
    (run / name).unlink()
    with pytest.raises(DataError, match=re.escape(name)):
        render(run)
    with pytest.raises(DataError, match=re.escape(name)):
        write_report(run)
    assert not (run / "report.html").exists()


def test_bad_files_are_data_errors(minimal_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(minimal_run, run)
    with pytest.raises(DataError, match="not a directory|not found"):
        render(tmp_path / "nope")
    preds = pd.read_parquet(run / "predictions.parquet")
    preds.drop(columns="y_pred").to_parquet(run / "predictions.parquet")
    with pytest.raises(DataError, match=r"predictions\.parquet.*y_pred"):
        render(run)
    preds.to_parquet(run / "predictions.parquet")
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match=r"metrics\.json.*JSON"):
        render(run)
    (run / "metrics.json").write_text("[]")
    with pytest.raises(DataError, match=r"metrics\.json"):
        render(run)


def test_degenerate_run_renders_with_notes(tmp_path: Path) -> None:
    """One symbol (no cross-section), NaN-only model, tz-aware stamps, empty models, no folds."""
    run = make_run_dir(tmp_path / "run", optional=False)
    preds = pd.read_parquet(run / "predictions.parquet")
    preds = preds[preds["symbol"] == "S00"].copy()
    preds.loc[preds["model"] == "xgboost", ["y_pred"]] = np.nan
    preds["timestamp"] = preds["timestamp"].dt.tz_localize("UTC")
    preds.to_parquet(run / "predictions.parquet", index=False)
    (run / "folds.json").unlink()
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["models"] = {}
    metrics.pop("elapsed_s")
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = render(run)
    page = _Page(html)
    assert {p for p, _ in page.plots()} >= {"equity", "drawdown", "scatter"}
    assert "No cross-sectional IC" in html and "Not enough symbols" in html
    assert "<code>folds.json</code> not present in this run" in html


def test_volatility_run_without_backtest_entries(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", optional=False, backtest=False)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["label_kind"] = "volatility"
    for entry in metrics["models"].values():
        entry.pop("backtest", None)
        entry["test"]["overall"] = {"qlike": 1.0, "rmse": 0.2}
        entry.pop("valid")
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = render(run)
    test = _table(html, "metrics-test")
    assert "QLIKE" in test and "Sharpe net" not in test
    assert 'id="metrics-valid"' not in html


def test_odd_model_and_feature_names(tmp_path: Path) -> None:
    """Names with HTML and mathtext characters are escaped in HTML and drawn literally."""
    run = make_run_dir(tmp_path / "run")
    odd = "lgb $x$ <i>&"
    for name in ("predictions.parquet", "backtest.parquet", "feature_importance.parquet"):
        frame = pd.read_parquet(run / name)
        frame["model"] = frame["model"].replace("lightgbm", odd)
        if "feature" in frame:
            frame["feature"] = frame["feature"].str.replace("feature_0", "$f_")
        frame.to_parquet(run / name, index=False)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["models"] = {odd if k == "lightgbm" else k: v for k, v in metrics["models"].items()}
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = render(run)
    assert "lgb $x$ &lt;i&gt;&amp;" in html and "<i>&" not in html
    assert ("feature_importance", odd) in _Page(html).plots()
