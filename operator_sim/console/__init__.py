"""The web console at ``/ui/``: live pages over the same services as the admin API."""

from operator_sim.console.app import mount

__all__ = ["mount"]
