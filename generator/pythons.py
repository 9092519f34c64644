"""The Python versions generated projects (and kgen) support: the one place that says so.

The range is what the pinned dependencies' wheels allow (checked with `pip download
--no-deps --python-version X.Y --only-binary :all:`): keras 3.15 requires Python >= 3.11,
and tensorflow 2.21 has wheels for CPython 3.10 to 3.13 only (for 3.14 there is no 2.21
wheel). tensorflow-datasets 4.9.10 (>= 3.10) and tensorboard 2.21 (>= 3.9) allow more.
kgen's pyproject.toml repeats the range (a test keeps them equal); the template receives
it as the `requires_python` answer (its copier.yml default comes from `jinja_values`), and
`kgen new` refuses to run under any other Python (`spec.check_python`).
"""

from __future__ import annotations

import sys

OLDEST = (3, 11)  # keras 3.15: Requires-Python >= 3.11
NEWEST = (3, 13)  # tensorflow 2.21: wheels for cp310 to cp313
REQUIRES_PYTHON = f">={OLDEST[0]}.{OLDEST[1]},<{NEWEST[0]}.{NEWEST[1] + 1}"
SUPPORTED = tuple(f"{OLDEST[0]}.{minor}" for minor in range(OLDEST[1], NEWEST[1] + 1))


def running() -> tuple[int, int]:
    """The (major, minor) version of this interpreter."""
    return sys.version_info[:2]
