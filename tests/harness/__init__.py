"""Real servers for tests, benchmarks and the demo: `python -m tests.harness up|down --dir D`."""

from tests.harness.process import HarnessError
from tests.harness.stack import Stack

__all__ = ["HarnessError", "Stack"]
