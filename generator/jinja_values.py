"""A Jinja extension that gives the template kgen's own values, so it keeps no copy of them.

copier loads it from `_jinja_extensions` in templates/copier.yml; copier.yml's defaults
and the templates read the registry through these globals, so a plain `copier copy`
renders what `kgen new` renders.
"""

from __future__ import annotations

from jinja2.ext import Extension

from generator import registry
from generator.pythons import REQUIRES_PYTHON, SUPPORTED


class KgenValues(Extension):
    """Adds kgen's values and registry lookups to the template's globals."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals.update(
            kgen_requires_python=REQUIRES_PYTHON,
            kgen_pythons=SUPPORTED,
            kgen_arch=registry.ARCHITECTURES.__getitem__,
            kgen_task=registry.TASKS.__getitem__,
            kgen_optimizer=registry.OPTIMIZERS.__getitem__,
            kgen_lr_schedule=registry.LR_SCHEDULES.__getitem__,
            kgen_strategy=registry.STRATEGIES.__getitem__,
            kgen_data_dir_help=registry.data_dir_help,
            kgen_tfds=registry.tfds_dataset,
            kgen_metric_names=registry.metric_names,
            kgen_source_module=registry.source_module,
        )
