"""CRSLab's KGSF and KBRD data loaders (registered under their own names), with the rec targets of the run's
protocol (:mod:`crslab_c2crs.data.targets`) instead of their built-in Recommender-turn filter. The entries are
built as CRSLab builds them (KGSF: the whole sample plus ``item``; KBRD: ``context_entities`` and ``item``), so
under the default protocol the batches are CRSLab's own."""
from __future__ import annotations

import importlib
from typing import Any, Dict, List

from crslab_c2crs.data.targets import RecTargetsMixin
from crslab_c2crs.registry import register_dataloader

_stock_kgsf = importlib.import_module("crslab.data.dataloader.kgsf").KGSFDataLoader
_stock_kbrd = importlib.import_module("crslab.data.dataloader.kbrd").KBRDDataLoader


@register_dataloader("KGSF")
class KGSFDataLoader(RecTargetsMixin, _stock_kgsf):
    """CRSLab's KGSF loader; ``rec_process_fn`` follows ``rec_targets``."""

    def rec_process_fn(self) -> List[Dict[str, Any]]:
        """One entry per target movie: a (shallow) copy of the turn's sample with ``item`` set."""
        return [dict(sample, item=movie) for sample, movie in self.rec_target_entries()]


@register_dataloader("KBRD")
class KBRDDataLoader(RecTargetsMixin, _stock_kbrd):
    """CRSLab's KBRD loader; ``rec_process_fn`` follows ``rec_targets``."""

    def rec_process_fn(self) -> List[Dict[str, Any]]:
        """One entry per target movie: the turn's context entities and ``item``."""
        return [{"context_entities": sample["context_entities"], "item": movie}
                for sample, movie in self.rec_target_entries()]
