"""Rendering of an SE's desired configuration into HAProxy configuration text (pure)."""

from fulcrum.se.render.render import render, server_arguments
from fulcrum.se.render.view import RenderError, RuntimePaths, Tuning, build_view

__all__ = ["RenderError", "RuntimePaths", "Tuning", "build_view", "render", "server_arguments"]
