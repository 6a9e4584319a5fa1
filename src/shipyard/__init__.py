"""Shipyard: from a git push to running, wired service instances."""

__version__ = "0.1.0"
