"""The operator server: app factory, routes, middleware, scheduler."""

from operator_sim.server.app import ENDPOINTS, create_app
from operator_sim.server.protocol import ProblemRunner

__all__ = ["ENDPOINTS", "ProblemRunner", "create_app"]
