"""A Jinja extension that gives the template kgen's own values, so it keeps no copy of them.

copier loads it from `_jinja_extensions` in templates/copier.yml; copier.yml's defaults
read the values, so a plain `copier copy` records what `kgen new` records.
"""

from __future__ import annotations

from jinja2.ext import Extension

from generator.pythons import REQUIRES_PYTHON


class KgenValues(Extension):
    """Adds `kgen_requires_python` to the template's globals."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["kgen_requires_python"] = REQUIRES_PYTHON
