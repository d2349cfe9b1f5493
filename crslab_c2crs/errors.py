"""Errors that are the user's to fix: the runner prints their message, without a traceback, and exits 2."""


class PluginError(Exception):
    """Base class: the message names the file, field or flag at fault and says how to fix it."""


class ConfigError(PluginError, ValueError):
    """A config file or override that cannot be used."""


class MissingDataError(PluginError, RuntimeError):
    """A dataset or resource CRSLab needs is not on disk (nothing is ever downloaded)."""


USER_ERRORS = (PluginError,)
