"""Command line: thin typer commands over library functions, registered explicitly below (one module per
command group). Heavy modules are imported inside commands, so `--help` loads no model library.

Exit codes: 0 success; 2 bad input (ontology, arguments, model, output dir), nothing written;
3 the run finished but some images were skipped (listed in OUTPUT/skipped.txt); 130 interrupted;
1 unexpected error (set AUTOLABEL_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from autolabel.cli.compare import compare
from autolabel.cli.export import export
from autolabel.cli.label import backends, label, validate
from autolabel.cli.quality import evaluate, preview, report, review, sample, tune
from autolabel.cli.serve import serve_app
from autolabel.cli.tools import import_corrections, push_app
from autolabel.cli.train import train

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Turn a folder of unlabeled images into an instance-segmentation dataset.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"autolabel {version('autolabel')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Turn a folder of unlabeled images into an instance-segmentation dataset."""


app.command()(label)
app.command()(validate)
app.command()(export)
app.command()(review)
app.command("eval")(evaluate)
app.command()(tune)
app.command()(compare)
app.command()(report)
app.command()(train)
app.command()(sample)
app.command()(preview)
app.command()(backends)
app.command("import")(import_corrections)
app.add_typer(push_app, name="push")
app.add_typer(serve_app, name="serve")


def main() -> None:
    from autolabel import interrupts

    try:
        app(prog_name="autolabel")
    finally:
        if interrupts.late():  # Ctrl-C after the command's work was done (and whole): still an interrupt
            sys.stderr.write("interrupted (after the command finished: its output is complete)\n")
            sys.exit(130)
