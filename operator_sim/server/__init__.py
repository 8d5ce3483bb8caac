"""The operator server: app factory, routes, middleware, scheduler."""

from operator_sim.server.app import ENDPOINTS, create_app

__all__ = ["ENDPOINTS", "create_app"]
