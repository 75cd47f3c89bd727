"""Renders a view (see `view.build_view`) into HAProxy configuration text with the Jinja templates."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from fulcrum.se.render.view import View

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    # Not HTML: autoescape would corrupt the config. Every value is already quoted by the view builder.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(view: View) -> str:
    """The complete haproxy.cfg for `view`."""
    return _environment().get_template("haproxy.cfg.j2").render(view)


def server_arguments(backend: View, server: View) -> str:
    """What follows `server <name> <address>` in the config; also the arguments of `add server`."""
    module = _environment().get_template("server.j2").module
    return str(module.server_arguments(backend, server))  # type: ignore[attr-defined]
