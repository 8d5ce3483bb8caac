"""The operator server: app factory, routes, middleware, scheduler."""

from operator_sim.server.app import ENDPOINTS, MAX_BODY_BYTES, create_app

__all__ = ["ENDPOINTS", "MAX_BODY_BYTES", "create_app"]
