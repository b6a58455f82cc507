"""Real servers for tests, benchmarks and the demo: `python -m harness up|down --dir D`."""

from harness.process import HarnessError
from harness.stack import Stack

__all__ = ["HarnessError", "Stack"]
