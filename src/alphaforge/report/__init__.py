"""One self-contained HTML report per run directory.

``render(run_dir)`` returns the page as a string; ``write_report(run_dir)`` writes it to
``run_dir/report.html`` atomically. The page needs no network: CSS is inline and every plot is an
embedded PNG. See :mod:`alphaforge.report.html` for the sections and the files they read.
"""

from __future__ import annotations

from alphaforge.report.html import render, write_report

__all__ = ["render", "write_report"]
