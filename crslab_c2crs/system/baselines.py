"""CRSLab's built-in KGSF and KBRD systems, with the interactive mode CRSLab leaves empty (``interact`` is
``pass`` in 0.1.2) and recommendation scored by our evaluator from the item scores (CRSLab hands it only the top
50 indices, which cannot drop the context's movies nor show scores). Training is CRSLab's own, unchanged; KGSF's
pre-training may be kept and reused across runs (``pretrain_cache``), as C2-CRS's stage checkpoints are."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from loguru import logger

from crslab.system.utils.functions import ind2txt
from crslab_c2crs import distributed
from crslab_c2crs.checkpoints import check_free_space, check_stored, load_into, load_state, save_state
from crslab_c2crs.config import choice_error, register_config_check, register_config_keys
from crslab_c2crs.movie_slots import slot_evaluation
from crslab_c2crs.paths import checkpoint_dir, saved_system_file
from crslab_c2crs.registry import register_system

_stock_kgsf = importlib.import_module("crslab.system.kgsf").KGSFSystem
_stock_kbrd = importlib.import_module("crslab.system.kbrd").KBRDSystem


class _ItemScoreEvaluation:
    """``rec_evaluate`` of CRSLab's KGSF and KBRD systems, handing the evaluator every item's score; ``step`` notes
    the stage, which a non-finite training loss is reported with (:mod:`crslab_c2crs.compat`), and keeps a conv test
    batch, whose responses ``conv_evaluate`` counts against the turn's ranking (:mod:`crslab_c2crs.movie_slots`).
    ``step`` also puts the model in training mode for training steps only: CRSLab never leaves it, so its validation
    and test passes decoded with dropout on (their rec paths have no dropout: rec figures are the same either way)."""

    def step(self, batch, stage: str, mode: str):
        self.model.train(mode == "train")
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
    """CRSLab's KBRD system; ``interact`` opens the plugin's chat (see :mod:`crslab_c2crs.interactive.chat`).

    KBRD is one model for both tasks, and CRSLab's conv stage trains all of it, its KG encoder and user attention
    too, after the rec test has scored it: one conv epoch of the quick start's budget takes test Recall@10 from 0.086
    to 0.009. The recommender CRSLab's rec test scored is therefore kept (:attr:`rec_snapshot`), saved with ``-ss``
    beside the system (``<model file stem>-rec.pth``), and it is the one that ranks the movies in the chat and in the
    conv test pass's movie slots (:meth:`recommender`). A system saved without it ranks with the model after its
    conv stage, with a warning. Restored with ``-rs`` and run again, the rec stage goes on from the kept
    recommender and the conv stage from the model as saved after it.
    """

    rec_snapshot: Optional[torch.nn.Module] = None

    def _copy_of_model(self) -> torch.nn.Module:
        """A fresh KBRD model holding the current weights, in eval mode and without gradients (built by CRSLab's
        ``get_model``: the fast R-GCN's sparse buffers cannot be deep-copied; under a forked RNG, so the copy leaves
        the run's random numbers as they were)."""
        from crslab.model import get_model

        with torch.random.fork_rng(devices=[]):
            copy_ = get_model(self.opt, self.opt["model"], self.device, self.vocab, self.side_data).to(self.device)
        copy_.load_state_dict(distributed.bare(self.model).state_dict())
        return copy_.eval().requires_grad_(False)

    def recommender(self) -> torch.nn.Module:
        """The model that ranks items: the recommender as CRSLab's rec test scored it, when kept."""
        return self.rec_snapshot if self.rec_snapshot is not None else distributed.bare(self.model)

    def train_recommender(self) -> None:
        after_conv = None
        if self.rec_snapshot is not None:  # restored (-rs): each stage goes on from its own saved state
            after_conv = {key: value.clone() for key, value in distributed.bare(self.model).state_dict().items()}
            distributed.bare(self.model).load_state_dict(self.rec_snapshot.state_dict())
        super().train_recommender()
        self.rec_snapshot = self._copy_of_model()
        if after_conv is not None:
            distributed.bare(self.model).load_state_dict(after_conv)

    def _rec_file(self) -> Path:
        path = saved_system_file(self.opt)
        return path.with_name(f"{path.stem}-rec.pth")

    def save_model(self) -> None:
        super().save_model()
        if self.rec_snapshot is not None:
            state = {"model_state_dict": self.rec_snapshot.state_dict(), "stage": "rec"}
            distributed.main_writes(lambda: save_state(state, self._rec_file()))

    def restore_model(self) -> None:
        super().restore_model()
        path = self._rec_file()
        if not path.is_file():
            logger.warning(f"[{path} not found: KBRD ranks items with the model after its conv stage, which trained "
                           "its KG encoder too; train and save it again with -ss to keep its recommender]")
            return
        remedy = "train and save the system again with -ss, or delete it to rank with the model after conv"
        state = load_state(path, self.device, remedy)
        check_stored(state, path, "rec", distributed.bare(self.model), remedy)
        self.rec_snapshot = self._copy_of_model()
        load_into(self.rec_snapshot, state, "model_state_dict", path, remedy)

    def _item_scores(self, batch) -> torch.Tensor:
        # the step has padded and moved ``context_entities`` in place
        context_entities = batch["context_entities"].to(self.device)
        no_items = torch.zeros(len(context_entities), dtype=torch.long, device=self.device)
        return self.recommender().recommend({"context_entities": context_entities, "item": no_items}, "test")[1][
            :, self.item_ids]

    def _context_entities(self, batch) -> torch.Tensor:
        return batch["context_entities"]

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import open_chat

        open_chat(self)
