"""``python -m benchmarks.eval {generate,run,report}``."""

from __future__ import annotations

import sys

from benchmarks.eval.cli import main

sys.exit(main())
