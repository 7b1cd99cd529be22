"""`qms city …`: the city's central tier (the commands are those of `python -m qms.city`,
kept in one place: qms/city/__main__.py)."""
from __future__ import annotations

from qms.city.__main__ import add_arguments, run

__all__ = ["add_arguments", "run"]
