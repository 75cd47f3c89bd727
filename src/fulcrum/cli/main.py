"""Entry point of the `fulcrum` command."""

from __future__ import annotations

from pathlib import Path

import typer

from fulcrum import __version__

app = typer.Typer(
    help="Fulcrum application delivery controller. API commands read FULCRUM_URL, FULCRUM_USER, "
    "FULCRUM_PASSWORD and FULCRUM_TENANT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
controller_app = typer.Typer(help="Run the controller.", no_args_is_help=True)
app.add_typer(controller_app, name="controller")


@app.command()
def version() -> None:
    """Print the version of this command."""
    typer.echo(__version__)


@controller_app.command("run")
def controller_run(
    listen: str = typer.Option("127.0.0.1:9080", "--listen", help="HOST:PORT for the API"),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="State directory [env FULCRUM_DATA_DIR, default ./.fulcrum]"
    ),
    db: str | None = typer.Option(
        None, "--db", help="Database URL, e.g. postgresql://user@127.0.0.1/fulcrum [env FULCRUM_DB_URL; default SQLite in the data dir]"
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error"),
) -> None:
    """Run the controller in the foreground until SIGTERM or Ctrl-C."""
    # Imported here so that client commands start fast and never load the server stack.
    from fulcrum.controller.main import run
    from fulcrum.controller.settings import ControllerSettings, parse_listen

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--listen") from None
    if log_level not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("must be debug, info, warning or error", param_hint="--log-level")
    settings = ControllerSettings.from_env(data_dir=data_dir, db_url=db, listen_host=host, listen_port=port)
    run(settings, log_level)


def main() -> None:
    app()
