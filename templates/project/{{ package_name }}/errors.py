"""The errors the command line reports as one line: bad input (exit 2), divergence (3)."""


def first_line(error: BaseException) -> str:
    """An exception's message as one line: its first, or its type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class ConfigError(ValueError):
    """A config file, flag or input file is invalid; the message names it and what is valid."""


class DataError(ConfigError):
    """The data cannot be loaded or does not match the configuration."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
