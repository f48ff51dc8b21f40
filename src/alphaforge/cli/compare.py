"""``alphaforge compare``: models of several runs side by side on the bars all of them predicted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from alphaforge.cli.ui import guard, print_table, spinner
from alphaforge.compare import compare_runs


def compare_cmd(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="run directories; the first model is the reference")
    ],
    split: Annotated[str, typer.Option(help="predictions to score: test | valid")] = "test",
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", help="keep only this model (run/model or model); repeatable"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the bootstrap intervals")] = 0,
) -> None:
    """Compare models' Rank IC on their common bars, with paired differences to the first."""
    with guard(), spinner("comparing"):
        table = compare_runs(run_dirs, split, models=model, seed=seed)
    n_dates = int(table["n_dates"].max()) if len(table) else 0
    view = Table(
        title=f"{split} Rank IC on the {n_dates} dates all models predicted; "
        f"diff: paired, vs {table.attrs['reference']}",
        caption="sig *: Newey-West |t| above its critical value and the 95% CI excludes 0",
        box=box.SIMPLE_HEAD,
    )
    view.add_column("model", overflow="fold")
    for head in ("rank_ic", "t", "95% CI", "sig", "diff", "t diff", "sig"):
        view.add_column(head, justify="left" if head == "sig" else "right", no_wrap=True)
    for name, row in table.iterrows():
        view.add_row(
            str(name),
            _num(row["rank_ic"], 4),
            _num(row["t"], 2),
            f"[{_num(row['ci_lo'], 3)}, {_num(row['ci_hi'], 3)}]",
            "*" if row["significant"] else "",
            _num(row["diff"], 4, sign=True),
            _num(row["diff_t"], 2),
            "*" if row["diff_significant"] else "",
        )
    print_table(view)


def _num(v: object, digits: int, *, sign: bool = False) -> str:
    """``v`` with ``digits`` decimals (a sign if asked), or ``-`` when it is not a number."""
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    if x != x:  # NaN
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
