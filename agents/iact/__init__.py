"""IACT Observability agents and CLIs."""

__version__ = "0.2.0"
