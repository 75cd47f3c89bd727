"""Entry point of the `fulcrum` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fulcrum import __version__
from fulcrum.cli.apply import HELP as APPLY_HELP
from fulcrum.cli.apply import apply_command
from fulcrum.cli.client import ClientConfig
from fulcrum.cli.resources import events_command, register_types, whoami_command

app = typer.Typer(
    help="Fulcrum application delivery controller. API commands read FULCRUM_URL, FULCRUM_USER, "
    "FULCRUM_PASSWORD and FULCRUM_TENANT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
controller_app = typer.Typer(help="Run the controller.", no_args_is_help=True)
app.add_typer(controller_app, name="controller")
se_app = typer.Typer(
    help="Run a Service Engine agent (started by the cloud connector).", no_args_is_help=True
)
app.add_typer(se_app, name="se")
local_app = typer.Typer(help="The local cloud: SEs as processes on this host.", no_args_is_help=True)
app.add_typer(local_app, name="local")


@app.callback()
def connection(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Controller URL (env FULCRUM_URL; default http://127.0.0.1:9080)"),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="User name (env FULCRUM_USER; default admin)")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password", help="Password (env FULCRUM_PASSWORD; prefer the env var: argv is visible to ps)"
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", help="Tenant name or uuid to act in (env FULCRUM_TENANT; default the user's own)"
        ),
    ] = None,
) -> None:
    """Settle where API commands connect and as whom; commands open the connection when they need it."""
    ctx.obj = ClientConfig.from_env(url=url, user=user, password=password, tenant=tenant)


register_types(app)
app.command("apply", help=APPLY_HELP)(apply_command)
app.command("events")(events_command)
app.command("whoami")(whoami_command)


@app.command()
def version() -> None:
    """Print the version of this command."""
    typer.echo(__version__)


@controller_app.command("run")
def controller_run(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT for the API")] = "127.0.0.1:9080",
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="State directory (env FULCRUM_DATA_DIR, default ./.fulcrum)"),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL, e.g. postgresql://user@127.0.0.1/fulcrum "
            "(env FULCRUM_DB_URL; default SQLite in the data dir)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "info",
) -> None:
    """Run the controller in the foreground until SIGTERM or Ctrl-C."""
    # Imported here so that client commands start fast and never load the server stack.
    from fulcrum.controller.main import run  # noqa: PLC0415
    from fulcrum.controller.settings import ControllerSettings, parse_listen  # noqa: PLC0415

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--listen") from None
    if log_level not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("must be debug, info, warning or error", param_hint="--log-level")
    settings = ControllerSettings.from_env(data_dir=data_dir, db_url=db, listen_host=host, listen_port=port)
    run(settings, log_level)


@se_app.command("run")
def se_run(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="The SE's directory (holds bootstrap.json)")],
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "info",
) -> None:
    """Run a Service Engine agent in the foreground until SIGTERM."""
    import logging  # noqa: PLC0415

    from fulcrum.se.agent import run_agent  # noqa: PLC0415
    from fulcrum.se.driver import HAProxyDriver  # noqa: PLC0415

    if not (run_dir / "bootstrap.json").exists():
        raise typer.BadParameter(f"{run_dir}/bootstrap.json is missing", param_hint="--run-dir")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_agent(run_dir, HAProxyDriver(run_dir))


@local_app.command("down")
def local_down(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Controller state directory (env FULCRUM_DATA_DIR, default ./.fulcrum)"
        ),
    ] = None,
) -> None:
    """Stop exactly the Service Engines that this data dir's controller started, and nothing else."""
    import os  # noqa: PLC0415

    from fulcrum.cloud.local.connector import LocalCloud  # noqa: PLC0415

    directory = data_dir or Path(os.environ.get("FULCRUM_DATA_DIR", ".fulcrum"))
    if not (directory / "local-cloud").exists():
        typer.echo(f"no local SEs recorded in {directory}")
        return
    stopped = LocalCloud(directory).down()
    typer.echo(f"stopped {len(stopped)} service engine(s)" + (": " + ", ".join(stopped) if stopped else ""))


def main() -> None:
    app()
