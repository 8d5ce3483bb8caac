"""operator-sim: a simulated mobile operator for messenger identification (Decree No. 1801)."""

__version__ = "0.1.0"
