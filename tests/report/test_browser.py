"""Open the report in headless Chromium: it loads offline, every plot decodes, no console errors,
and at a 1300 px wide window every table fits its card (no column hidden behind a scrollbar).

Chromium comes from ``scripts/install_chromium.sh``. Without it the tests are skipped locally and
fail when the ``CI`` environment variable is set (CI installs it first).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from alphaforge.report import write_report

WIDTH, HEIGHT = 1400, 2400
# injected into a test copy only: the report itself ships no script
PROBE = """<script>
window.__errors = 0;
window.addEventListener("error", () => { window.__errors += 1; }, true);
window.addEventListener("load", () => {
  const imgs = Array.from(document.querySelectorAll("img.plot"));
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.title = `probe plots=${ok}/${imgs.length} errors=${window.__errors}`;
});
</script>"""
FIT_WIDTH = 1300
# every table against the element it sits in: wider means columns hidden behind a scrollbar
FIT_PROBE = """<script>
window.addEventListener("load", () => {
  const tables = Array.from(document.querySelectorAll("table"));
  const over = tables
    .filter((t) => t.scrollWidth > t.parentElement.clientWidth)
    .map((t) => `${t.id || t.className}:${t.scrollWidth}>${t.parentElement.clientWidth}`);
  document.title = `fit width=${window.innerWidth} tables=${tables.length} over=${over}`;
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    if os.environ.get("CI"):
        pytest.fail("chromium is missing but CI is set: run scripts/install_chromium.sh first")
    pytest.skip("chromium not installed (run scripts/install_chromium.sh to enable this test)")


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium(full_run: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    report = write_report(full_run, tmp_path / "report.html")
    html = report.read_text(encoding="utf-8")
    n_plots = html.count('class="plot')
    assert n_plots >= 8

    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    dom = _run(
        chromium,
        tmp_path / "profile-dom",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom.stdout, re.S)
    assert title, dom.stdout[:500]
    assert title.group(1) == f"probe plots={n_plots}/{n_plots} errors=0"
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    assert not console, "\n".join(console)

    shot = tmp_path / "shot.png"
    res = _run(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        f"--window-size={WIDTH},{HEIGHT}",
        report.as_uri(),
    )
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    assert shot.stat().st_size > 50_000
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    # a blank or error page is nearly one colour; the report has text, tables and plots
    assert float(np.std(pixels[..., :3])) > 0.05
    assert len(np.unique((pixels[::8, ::8, :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50


def test_every_table_fits_its_card_at_1300_px(wide_run: Path, tmp_path: Path) -> None:
    """The widest report (every metric, the longest model name, significance and ensembles)."""
    chromium = _chromium()
    html = write_report(wide_run, tmp_path / "report.html").read_text(encoding="utf-8")
    n_tables = html.count("<table")
    assert n_tables >= 8
    probe = tmp_path / "fit.html"
    probe.write_text(html.replace("<head>", "<head>" + FIT_PROBE, 1), encoding="utf-8")
    dom = _run(
        chromium,
        tmp_path / "profile-fit",
        f"--window-size={FIT_WIDTH},{HEIGHT}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom.stdout, re.S)
    assert title, dom.stdout[:500]
    assert title.group(1) == f"fit width={FIT_WIDTH} tables={n_tables} over="
