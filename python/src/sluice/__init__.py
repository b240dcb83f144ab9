"""Sluice for Python: the record protocol (sluice.protocol) and the
replica runtime (sluice.replica)."""

__version__ = "0.1.0"
