"""The report's Significance section: present only when ``metrics.json`` has the entries."""

from __future__ import annotations

import json
import re
from pathlib import Path

from alphaforge.report import render

from .conftest import make_run_dir

SIGNIFICANCE = {
    "lightgbm": {
        "n_dates": 120,
        "mean_rank_ic": 0.0412,
        "rank_ic_t": 3.517,
        "rank_ic_crit": 2.03,
        "rank_ic_ci": [0.0181, 0.0655],
        "sharpe": 1.734,
        "sharpe_ci": [0.21, 3.3],
        "dsr": 0.912,
        "n_trials": 12,
        "significant": True,
    },
    "xgboost": {  # a volatility-style entry: no backtest, nulls from NaN
        "n_dates": 120,
        "mean_rank_ic": 0.003,
        "rank_ic_t": 0.41,
        "rank_ic_crit": 2.03,
        "rank_ic_ci": [None, None],
        "n_trials": 12,
        "significant": False,
    },
}


def _with_significance(root: Path) -> Path:
    run = make_run_dir(root, optional=False)
    path = run / "metrics.json"
    metrics = json.loads(path.read_text())
    for name, entry in SIGNIFICANCE.items():
        metrics["models"][name]["significance"] = entry
    path.write_text(json.dumps(metrics))
    return run


def _table(html: str) -> str:
    match = re.search(r'<table[^>]*id="significance-table".*?</table>', html, re.S)
    assert match
    return match.group(0)


def test_significance_section(tmp_path: Path) -> None:
    html = render(_with_significance(tmp_path / "run"))
    assert '<section id="significance">' in html and 'href="#significance"' in html
    assert html.index('id="metrics"') < html.index('id="significance"')
    table = _table(html)
    rows = re.findall(r'<th scope="row">([a-z_]+)', table)
    assert rows == ["lightgbm", "xgboost"]  # ranked like the metrics table; others have none
    lgb = re.search(r"lightgbm</th>(.*?)</tr>", table, re.S).group(1)  # type: ignore[union-attr]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", lgb)
    assert cells == [
        "0.0412",
        "3.52",
        "[0.0181, 0.0655]",
        "1.73",
        "[0.21, 3.30]",
        "91.2%",
        "12",
        "yes",
    ]
    assert 'title="critical value 2.03"' in lgb and '<td class="best">yes</td>' in lgb
    xgb = re.search(r"xgboost</th>(.*?)</tr>", table, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r"<td[^>]*>(.*?)</td>", xgb)[2:6] == ["\u2013"] * 4
    assert xgb.endswith("<td>no</td>")


def test_no_significance_no_section(tmp_path: Path) -> None:
    html = render(make_run_dir(tmp_path / "run", optional=False))
    assert 'id="significance"' not in html
