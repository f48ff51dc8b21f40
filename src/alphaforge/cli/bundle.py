"""``alphaforge fit`` and ``alphaforge predict``: a bundle fitted on all history, then forecasts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from alphaforge.bundle import fit_and_save, predict
from alphaforge.cli.ui import add_columns, guard, new_table, number_cells, out, print_table, spinner

SHOWN = 10  # forecasts printed per model (all of them are in --out)


def fit_cmd(
    config: Annotated[Path, typer.Argument(help="experiment YAML (as for `alphaforge run`)")],
    out_dir: Annotated[Path, typer.Option("--out", help="bundle folder to write")],
    data: Annotated[
        Optional[str], typer.Option(help="fit on this panel instead (all its symbols)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace --out if it exists")] = False,
) -> None:
    """Fit every model and ensemble on all labelled history and write a bundle folder."""
    with guard(), spinner("fitting"):
        # --out is claimed first: a concurrent writer to it fails before fitting
        bundle = fit_and_save(config, out_dir, data=data, overwrite=overwrite)
    m = bundle.manifest
    out.print(
        f"wrote {out_dir}: {len(bundle.models)} model(s) ({', '.join(bundle.models)}), "
        f"{len(m['data']['symbols'])} symbols, trained up to {m['train_end']}, data up to "
        f"{m['data']['last_timestamp']}"
    )


def predict_cmd(
    bundle: Annotated[Path, typer.Argument(help="bundle folder from `alphaforge fit`")],
    data: Annotated[str, typer.Option(help="CSV/Parquet file, builtin:NAME or synthetic:...")],
    out_file: Annotated[Path, typer.Option("--out", help="forecasts file to write (.parquet)")],
    asof: Annotated[
        Optional[str], typer.Option(help="forecast from this bar (default: the panel's last)")
    ] = None,
) -> None:
    """Forecast every symbol from its latest bar; write a Parquet file and print the top."""
    with guard(), spinner("forecasting"):
        forecasts = predict(bundle, data, out=out_file, asof=asof)
    for model, g in forecasts.groupby("model", sort=False):
        top = g.head(SHOWN)
        table = new_table(f"{model}: best-ranked first")
        add_columns(table, ["symbol", "asof", "target", "y_pred"], numbers=["y_pred"])
        for row, pred in zip(top.itertuples(), number_cells(top["y_pred"].tolist()), strict=True):
            table.add_row(row.symbol, str(row.asof.date()), str(row.target_timestamp.date()), pred)
        print_table(table)
    out.print(f"wrote {out_file}: {len(forecasts)} forecasts")
