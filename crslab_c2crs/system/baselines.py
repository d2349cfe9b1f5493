"""CRSLab's built-in KGSF and KBRD systems, with the interactive mode CRSLab leaves empty (``interact`` is
``pass`` in 0.1.2) and recommendation scored by our evaluator from the item scores (CRSLab hands it only the top
50 indices, which cannot drop the context's movies nor show scores). Training is CRSLab's own, unchanged; KGSF's
pre-training may be kept and reused across runs (``pretrain_cache``), as C2-CRS's stage checkpoints are."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

import torch
from loguru import logger

from crslab.system.utils.functions import ind2txt
from crslab_c2crs import distributed
from crslab_c2crs.checkpoints import check_free_space, check_stored, load_into, load_state, save_state
from crslab_c2crs.config import choice_error, register_config_check, register_config_keys
from crslab_c2crs.movie_slots import slot_evaluation
from crslab_c2crs.paths import checkpoint_dir
from crslab_c2crs.registry import register_system

_stock_kgsf = importlib.import_module("crslab.system.kgsf").KGSFSystem
_stock_kbrd = importlib.import_module("crslab.system.kbrd").KBRDSystem


class _ItemScoreEvaluation:
    """``rec_evaluate`` of CRSLab's KGSF and KBRD systems, handing the evaluator every item's score; ``step`` notes
    the stage, which a non-finite training loss is reported with (:mod:`crslab_c2crs.compat`), and keeps a conv test
    batch, whose responses ``conv_evaluate`` counts against the turn's ranking (:mod:`crslab_c2crs.movie_slots`)."""

    def step(self, batch, stage: str, mode: str):
        self.training_stage = stage
        self._conv_test_batch = batch if (stage, mode) == ("conv", "test") else None
        result = super().step(batch, stage, mode)
        if (stage, mode) == ("conv", "train") and distributed.active() and hasattr(self.model, "longest_label"):
            # KBRD decodes up to the longest training response it has seen: under torchrun, the global batch's
            self.model.module.longest_label = distributed.max_over_ranks(self.model.longest_label)
        return result

    def _item_scores(self, batch) -> torch.Tensor:
        """Scores ``(batch, n_items)`` of every item for the contexts of a conv batch."""
        raise NotImplementedError

    def _context_entities(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def conv_evaluate(self, prediction: torch.Tensor, response: torch.Tensor) -> None:
        """CRSLab's, on the test pass's hypotheses counted (and, with ``eval_movie_slots``, filled) against each
        turn's ranking."""
        batch = getattr(self, "_conv_test_batch", None)
        if batch is not None and "slots" not in self.__dict__:
            self.slots = slot_evaluation(self)
        if batch is None or self.slots is None:
            super().conv_evaluate(prediction, response)
            return
        with torch.no_grad():
            hypotheses = self.slots(prediction, self._item_scores(batch), self._context_entities(batch))
        for hyp, ref in zip(hypotheses, response.tolist()):
            self.evaluator.gen_evaluate(hyp, [ind2txt(ref, self.ind2tok, self.end_token_idx)])

    def rec_evaluate(self, rec_predict: torch.Tensor, item_label: torch.Tensor) -> None:
        """Score ``rec_predict`` ``(batch, n_entity)`` on the items against target entity ids ``item_label``
        ``(batch,)``."""
        scores = rec_predict.detach().cpu()[:, self.item_ids]
        self.evaluator.evaluate_item_scores(scores, [self.item_ids.index(item) for item in item_label.tolist()])


# pretrain_cache: keep KGSF's MIM pre-training in <save>/<checkpoint_dir>/pretrain.pth and reuse it when present
register_config_keys("KGSF", ("pretrain_cache",), ())
# block_stutter: the chat's rule against a word said twice in a row (crslab_c2crs.interactive.adapters)
STUTTER_RULES = ("chat", "never")


def _check_block_stutter(opt: Mapping[str, Any], source: str) -> None:
    if opt.get("block_stutter", "chat") not in STUTTER_RULES:
        raise choice_error("block_stutter", opt["block_stutter"], STUTTER_RULES, "rule", source)


for _model in ("KGSF", "KBRD"):
    register_config_keys(_model, ("block_stutter",), ())
    register_config_check(_model, _check_block_stutter)


@register_system("KGSF")
class KGSFSystem(_ItemScoreEvaluation, _stock_kgsf):
    """CRSLab's KGSF system; ``interact`` opens the plugin's chat (see :mod:`crslab_c2crs.interactive.chat`).

    With ``pretrain_cache: true`` the model after CRSLab's MIM pre-training is saved to
    ``<save>/<checkpoint_dir>/pretrain.pth``, and a run that finds that file restores it instead of pre-training,
    so rec runs over several seeds can start from one pre-trained model, as C2-CRS's rec runs start from one
    ``fine.pth``. Every seeded rec run should then restore it (the run that pre-trains has drawn other random
    numbers before its rec stage): pre-train once in a run of its own, e.g. with ``rec.epoch=0``.
    """

    def pretrain(self) -> None:
        if not self.opt.get("pretrain_cache", False):
            super().pretrain()
            return
        path = checkpoint_dir(self.opt) / "pretrain.pth"
        if path.is_file():
            remedy = "delete it to pre-train again, or point checkpoint_dir at another run"
            state = load_state(path, self.device, remedy)
            check_stored(state, path, "pretrain", self.model, remedy)
            load_into(self.model, state, "model_state_dict", path, remedy)
            logger.info(f"[KGSF pre-training restored from {path}]")
            return
        check_free_space(path.parent, self.model, "KGSF's pre-training")
        super().pretrain()
        state = {"model_state_dict": self.model.state_dict(), "stage": "pretrain"}
        distributed.main_writes(lambda: save_state(state, path))
        logger.info(f"[Saved the KGSF pre-training to {path}]")

    def _item_scores(self, batch) -> torch.Tensor:
        _, context_entities, context_words, _ = (element.to(self.device) for element in batch)
        no_items = torch.zeros(len(context_entities), dtype=torch.long, device=self.device)
        rec_batch = (context_entities, context_words, torch.zeros_like(context_entities), no_items)
        return self.model.recommend(rec_batch, "test")[2][:, self.item_ids]

    def _context_entities(self, batch) -> torch.Tensor:
        return batch[1]

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import open_chat

        open_chat(self)


@register_system("KBRD")
class KBRDSystem(_ItemScoreEvaluation, _stock_kbrd):
    """CRSLab's KBRD system; ``interact`` opens the plugin's chat (see :mod:`crslab_c2crs.interactive.chat`)."""

    def _item_scores(self, batch) -> torch.Tensor:
        # the step has padded and moved ``context_entities`` in place
        context_entities = batch["context_entities"].to(self.device)
        no_items = torch.zeros(len(context_entities), dtype=torch.long, device=self.device)
        return self.model.recommend({"context_entities": context_entities, "item": no_items}, "test")[1][
            :, self.item_ids]

    def _context_entities(self, batch) -> torch.Tensor:
        return batch["context_entities"]

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import open_chat

        open_chat(self)
