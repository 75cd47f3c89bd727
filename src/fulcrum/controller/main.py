"""`fulcrum controller run`: serve the API with uvicorn until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

import uvicorn

from fulcrum.controller.app import create_app
from fulcrum.controller.settings import ControllerSettings


def run(settings: ControllerSettings, log_level: str = "info") -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=log_level,
        access_log=log_level == "debug",
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    # uvicorn handles SIGTERM/SIGINT: stops accepting, finishes requests in flight, runs shutdown.
    uvicorn.Server(config).run()
