"""The one exception type of the data builder."""
from __future__ import annotations

from crslab_c2crs.errors import PluginError


class DataBuildError(PluginError, RuntimeError):
    """Raised when the raw data cannot be turned into a dataset; the message names the file and record.

    The CLI prints the message without a traceback and exits with status 2.
    """
