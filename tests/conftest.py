"""Settings shared by every test."""

from __future__ import annotations

import os

from hypothesis import settings

# No per-example deadline: a loaded 2-core CI machine must not turn a slow example into a
# failure. In CI, derandomize so a run's examples are the same every time.
settings.register_profile("engined", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("engined")
