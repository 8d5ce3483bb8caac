"""`python -m operator_sim` runs the `operator-sim` command."""

from operator_sim.cli import main

raise SystemExit(main())
