"""The errors the command line reports as one line: bad input (exit 2), divergence (3)."""


class ConfigError(ValueError):
    """A config file, flag or input file is invalid; the message names it and what is valid."""


class DataError(ConfigError):
    """The data cannot be loaded or does not match the configuration."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
