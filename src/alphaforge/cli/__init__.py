"""The ``alphaforge`` command line: argument parsing and progress over library calls.

One module per command group, each a few lines per command over the public API:

    ui.py     consoles, the error guard (one red line, exit 2), 80-column tables, progress
              (live bars on a terminal, one-line records elsewhere)
    data.py   alphaforge data list|validate, alphaforge features
    run.py    alphaforge run|report|backtest|models
    tune.py   alphaforge tune, alphaforge tune report
    compare.py  alphaforge compare RUN_DIR...: models of several runs on their common test bars
    bundle.py   alphaforge fit CONFIG --out BUNDLE, alphaforge predict BUNDLE --data --out
    gpt.py    alphaforge gpt tokenize|train|generate|evaluate|analyze (loaded on first use:
              it needs torch, which the other commands do not)
"""

from __future__ import annotations

import importlib
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from alphaforge.cli import bundle, compare, data, run, tune, ui

# name -> (module, Typer attribute, help): groups imported only when their command is used
_LAZY_GROUPS = {
    "gpt": (
        "alphaforge.cli.gpt",
        "app",
        "Tokenize bars, train, sample and analyse the market GPT.",
    ),
}


class _LazyGroup(TyperGroup):
    """A command group whose heavy sub-groups are imported when invoked (Click's lazy pattern)."""

    _resolving = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *_LAZY_GROUPS]

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple:  # type: ignore[type-arg]
        self._resolving = True  # the command will run: import it for real
        try:
            return super().resolve_command(ctx, args)
        finally:
            self._resolving = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _LAZY_GROUPS:
            return super().get_command(ctx, cmd_name)
        module, attr, help_text = _LAZY_GROUPS[cmd_name]
        if not self._resolving:  # `alphaforge --help` lists the group: no import needed
            return click.Group(cmd_name, help=help_text)
        command = typer.main.get_command(getattr(importlib.import_module(module), attr))
        command.name, command.help = cmd_name, help_text
        return command


app = typer.Typer(
    cls=_LazyGroup,
    add_completion=False,
    no_args_is_help=True,
    help="alphaforge: honest out-of-sample forecasts for panels of market bars.",
)
app.add_typer(data.app, name="data")
app.command("features")(data.features_cmd)
app.command("models")(run.models_cmd)
app.command("run")(run.run_cmd)
app.command("report")(run.report_cmd)
app.command("backtest")(run.backtest_cmd)
app.command("compare")(compare.compare_cmd)
app.command("fit")(bundle.fit_cmd)
app.command("predict")(bundle.predict_cmd)
app.add_typer(tune.app, name="tune")


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log INFO messages")] = False,
) -> None:
    ui.setup_logging(verbose)


__all__ = ["app"]
