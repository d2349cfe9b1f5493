"""The system of the shortcut baselines (``Popularity``, ``RepeatContext``): nothing to train, the same
evaluation as every model.

``fit`` sets the training mention counts (:class:`~crslab_c2crs.data.items.ItemCatalog`) and evaluates the
validation and the test set with the project's evaluator, so ``run_crslab.py`` reports the same metrics,
writes the same ``--results`` and ``--dump-predictions`` files and ``bench.redial`` tabulates them beside the
trained models.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import torch

from crslab.system.base import BaseSystem
from crslab_c2crs.config import register_config_check, register_config_keys
from crslab_c2crs.data.items import ItemCatalog
from crslab_c2crs.errors import ConfigError
from crslab_c2crs.registry import register_system

SHORTCUTS = ("Popularity", "RepeatContext")
DEFAULT_BATCH_SIZE = 256


def _check_batch_size(opt: Mapping[str, Any], source: str) -> None:
    value = opt.get("batch_size", DEFAULT_BATCH_SIZE)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"batch_size: {value!r} is not an integer >= 1; correct it in {source} or with "
                          f"--set batch_size=VALUE")


# No stage sections: nothing is trained, so there is no epoch or optimizer to set; only the evaluation batch size.
for _name in SHORTCUTS:
    register_config_keys(_name, ("batch_size",), ())
    register_config_check(_name, _check_batch_size)


@register_system("Popularity")
@register_system("RepeatContext")
class ShortcutSystem(BaseSystem):
    """Evaluates a shortcut recommender (see :mod:`crslab_c2crs.model.shortcuts`) on the validation and test
    Recommender turns; option: ``batch_size`` (evaluation batch size, default 256)."""

    def __init__(self, opt, train_dataloader, valid_dataloader, test_dataloader, vocab, side_data,
                 restore_system=False, interact=False, debug=False, tensorboard=False):
        super().__init__(opt, train_dataloader, valid_dataloader, test_dataloader, vocab, side_data,
                         restore_system, interact, debug, tensorboard)
        if not restore_system:
            self.model.fit(ItemCatalog.from_data(side_data["item_entity_ids"],
                                                 self.train_dataloader.dataset).train_mentions)

    def step(self, batch: Dict[str, Any], stage: str, mode: str) -> None:
        if stage != "rec" or mode == "train":
            raise ValueError(f"the shortcut baselines only evaluate recommendations, not {stage}/{mode}")
        self.rec_evaluate(self.model.recommend(batch, mode), batch["item"])

    def rec_evaluate(self, scores: torch.Tensor, items: torch.Tensor) -> None:
        """Score the item ``scores`` ``(batch, n_items)`` against the target entity ids ``items`` ``(batch,)``."""
        self.evaluator.evaluate_item_scores(scores, self.model.item_index(items))

    def fit(self) -> None:
        batch_size = self.opt.get("batch_size", DEFAULT_BATCH_SIZE)
        self.model.eval()
        with torch.no_grad():
            for loader, mode in ((self.valid_dataloader, "val"), (self.test_dataloader, "test")):
                self.evaluator.reset_metrics()
                for batch in loader.get_rec_data(batch_size, shuffle=False):
                    self.step(batch, "rec", mode)
                self.evaluator.report(mode=mode)

    def interact(self) -> None:
        raise ConfigError(f"{self.opt['model_name']} is a shortcut baseline without a conversation module; "
                          f"interactive mode needs KGSF, KBRD or C2CRS")
