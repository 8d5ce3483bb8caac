#!/usr/bin/env python3
"""Seed a database with fake subscribers: the same as ``operator-sim seed``, as a script.

Usage: python scripts/seed.py --db PATH --count N [--seed S] [--fixture PATH]
       [--incomplete-share F] [--terminated-share F] [--print-sample N]
"""

from __future__ import annotations

import sys

from operator_sim.cli import main

if __name__ == "__main__":
    sys.exit(main(["seed", *sys.argv[1:]]))
