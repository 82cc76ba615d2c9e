"""`python -m bench`: runs the scenarios and phases once (bench/README.md) and writes bench/results/."""

import sys

from bench.runner import main

sys.exit(main())
