"""Collector Hub: tracks collector runs and pushes their progress live."""

__version__ = "0.1.0"
