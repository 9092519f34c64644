"""A Jinja extension that formats every rendered Python file of the template with black.

copier loads it from `_jinja_extensions` in templates/copier.yml, so `kgen new`, both
renders of `kgen update`/`copier update`, and a plain `copier copy` format identically,
in process: a 3-way merge never sees black noise.
"""

from __future__ import annotations

import re

from jinja2.ext import Extension

from generator.formatting import format_source

_JINJA_TAG = re.compile(r"{%.*?%}|{{.*?}}")


class BlackExtension(Extension):
    """Wrap each project `.py.jinja` template in a filter block that runs black."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["kgen_black"] = format_source

    def preprocess(
        self, source: str, name: str | None, filename: str | None = None
    ) -> str:
        # Variants (templates/variants/) are fragments, formatted as part of their includer.
        # Conditional names count by what they render to: {% if x %}conftest.py{% endif %}.
        plain = _JINJA_TAG.sub("", name or "")
        if plain.startswith("project/") and plain.endswith(".py.jinja"):
            return "{% filter kgen_black %}" + source + "{% endfilter %}"
        return source
