"""Errors that are the user's to fix: the runner prints their message, without a traceback, and exits 2."""


class PluginError(Exception):
    """Base class: the message names the file, field or flag at fault and says how to fix it."""


class ConfigError(PluginError, ValueError):
    """A config file, override or command-line flag that cannot be used."""


class MissingDataError(PluginError, RuntimeError):
    """A dataset or resource CRSLab needs is not on disk (nothing is ever downloaded)."""


class CheckpointError(PluginError, RuntimeError):
    """A stage checkpoint or saved system that is damaged or does not fit the configured model."""


class TrainingError(PluginError, RuntimeError):
    """Training cannot go on (the loss became NaN or infinite): the run stops with the stage and step."""


USER_ERRORS = (PluginError,)
