"""`python -m bench`: runs the four scenarios once and writes bench/results/<timestamp>.{json,png}."""

import sys

from bench.runner import main

sys.exit(main())
