"""CRSLab's built-in KGSF and KBRD systems, with the interactive mode CRSLab leaves empty (``interact`` is
``pass`` in 0.1.2). Training and evaluation are CRSLab's own, unchanged."""
from __future__ import annotations

import importlib

from crslab_c2crs.registry import register_system

_stock_kgsf = importlib.import_module("crslab.system.kgsf").KGSFSystem
_stock_kbrd = importlib.import_module("crslab.system.kbrd").KBRDSystem


@register_system("KGSF")
class KGSFSystem(_stock_kgsf):
    """CRSLab's KGSF system; ``interact`` opens the plugin's chat (see :mod:`crslab_c2crs.interactive.chat`)."""

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import chat

        chat(self)


@register_system("KBRD")
class KBRDSystem(_stock_kbrd):
    """CRSLab's KBRD system; ``interact`` opens the plugin's chat (see :mod:`crslab_c2crs.interactive.chat`)."""

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import chat

        chat(self)
