"""Fulcrum: an elastic, software-defined application delivery controller."""

__version__ = "0.1.0"
