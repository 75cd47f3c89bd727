"""`fulcrum controller run`: serve the API with uvicorn until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from fulcrum.controller.app import create_app
from fulcrum.controller.settings import ControllerSettings


class ControllerServer(uvicorn.Server):
    """uvicorn waits for requests in flight before it stops; SE long-polls are answered at once instead."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(self.config.app, "state", None)
        services = getattr(state, "services", None)
        if services is not None:
            services.registry.release_waiters()
        super().handle_exit(sig, frame)


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
    # Afterwards it re-raises the signal it caught under the handlers it found at start; with these
    # do-nothing handlers a clean shutdown ends the process with status 0 instead of "killed by SIGTERM".
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    ControllerServer(config).run()
