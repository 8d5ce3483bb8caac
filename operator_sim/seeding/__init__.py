"""Seeding: realistic, deterministic fake subscribers from Faker (the only package importing it).

``seed_database`` is the one implementation behind ``operator-sim seed`` and
``scripts/seed.py``.
"""

from operator_sim.seeding.pools import FAKER_VERSION
from operator_sim.seeding.progress import ProgressBar
from operator_sim.seeding.runner import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_INCOMPLETE_SHARE,
    DEFAULT_SEED,
    DEFAULT_TERMINATED_SHARE,
    Progress,
    SeedError,
    SeedSummary,
    check_arguments,
    generate_rows,
    seed_database,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_INCOMPLETE_SHARE",
    "DEFAULT_SEED",
    "DEFAULT_TERMINATED_SHARE",
    "FAKER_VERSION",
    "Progress",
    "ProgressBar",
    "SeedError",
    "SeedSummary",
    "check_arguments",
    "generate_rows",
    "seed_database",
]
