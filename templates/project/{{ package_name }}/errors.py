"""The errors the command line reports as one line: bad input (exit 2), divergence (3)."""

import re


def first_line(error: BaseException) -> str:
    """An exception's message as one line: its first, or its type when it has none.

    TensorFlow's op errors put their reason after "Graph execution error:" and a trace
    of where the op was defined, on the line before the failed node's name; and they
    wrap it in the name of the function and of the op, which are dropped.
    """
    lines = [line.strip() for line in str(error).strip().splitlines()]
    if lines and lines[0] == "Graph execution error:":
        reasons = [
            before
            for before, line in zip(lines, lines[1:], strict=False)
            if re.match(r"\[\[\{\{node ", line) and before
        ]
        lines = reasons or lines
    reason = lines[0] if lines else ""
    reason = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$", "", reason)
    return reason or type(error).__name__


class ConfigError(ValueError):
    """A config file, flag or input file is invalid; the message names it and what is valid."""


class DataError(ConfigError):
    """The data cannot be loaded or does not match the configuration."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
