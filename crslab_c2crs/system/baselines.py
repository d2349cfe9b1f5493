"""CRSLab's built-in KGSF and KBRD systems, with the interactive mode CRSLab leaves empty (``interact`` is
``pass`` in 0.1.2) and recommendation scored by our evaluator from the item scores (CRSLab hands it only the top
50 indices, which cannot drop the context's movies nor show scores). Training is CRSLab's own, unchanged."""
from __future__ import annotations

import importlib

import torch

from crslab_c2crs.registry import register_system

_stock_kgsf = importlib.import_module("crslab.system.kgsf").KGSFSystem
_stock_kbrd = importlib.import_module("crslab.system.kbrd").KBRDSystem


class _ItemScoreEvaluation:
    """``rec_evaluate`` of CRSLab's KGSF and KBRD systems, handing the evaluator every item's score."""

    def rec_evaluate(self, rec_predict: torch.Tensor, item_label: torch.Tensor) -> None:
        """Score ``rec_predict`` ``(batch, n_entity)`` on the items against target entity ids ``item_label``
        ``(batch,)``."""
        scores = rec_predict.detach().cpu()[:, self.item_ids]
        self.evaluator.evaluate_item_scores(scores, [self.item_ids.index(item) for item in item_label.tolist()])


@register_system("KGSF")
class KGSFSystem(_ItemScoreEvaluation, _stock_kgsf):
    """CRSLab's KGSF system; ``interact`` opens the plugin's chat (see :mod:`crslab_c2crs.interactive.chat`)."""

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import chat

        chat(self)


@register_system("KBRD")
class KBRDSystem(_ItemScoreEvaluation, _stock_kbrd):
    """CRSLab's KBRD system; ``interact`` opens the plugin's chat (see :mod:`crslab_c2crs.interactive.chat`)."""

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import chat

        chat(self)
