"""The C2-CRS system: four stages, each with its own optimiser, logs, validation and checkpoint.

1. ``coarse``: coarse-grained contrastive pre-training (paper Eq. 4-5);
2. ``fine``: fine-grained pre-training, ``L_fine + lambda * L_coarse`` (Eq. 6-7);
3. ``rec``: recommender fine-tuning (Eq. 8-9), early stopping on validation Recall@1 + Recall@50;
4. ``conv``: conversation fine-tuning (Eq. 10-12), early stopping on the validation generation loss (or, with
   ``conv.select_on``, on a metric of the greedy decoding of the validation batches).

Validation never looks at the test set; the test set is evaluated once, after the rec and after the conv stage,
with the best validation state. After each stage the model is saved to ``<save>/<checkpoint_dir>/<stage>.pth``;
``start_stage`` (``--stage`` on the command line) restores the checkpoint of the stage before it and runs from
there, so e.g. only the conversation stage can be redone, and ``end_stage`` is the last stage run (``fine``:
pre-training only; ``rec``: no conversation stage, e.g. to compare recommenders over seeds); ``start_stage:
test`` restores the conv checkpoint and only tests it (rec and conv), e.g. with another decoding setting;
``eval_split: valid`` points these test passes at the validation split, so that such settings are chosen without
the test set.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Any, Dict, List, Optional

import torch
from loguru import logger

import crslab.config
from crslab.evaluator.metrics.base import AverageMetric
from crslab.evaluator.metrics.gen import PPLMetric
from crslab.system.base import BaseSystem
from crslab.system.utils.functions import ind2txt
from crslab_c2crs import distributed
from crslab_c2crs.checkpoints import (
    check_free_space,
    check_stored,
    load_into,
    load_state,
    save_state,
    with_model_config,
)
from crslab_c2crs.errors import ConfigError
from crslab_c2crs.model.c2crs.config import ABLATIONS, STAGES
from crslab_c2crs.model.c2crs.id_floor import IdFloor
from crslab_c2crs.movie_slots import slot_evaluation
from crslab_c2crs.paths import checkpoint_dir
from crslab_c2crs.registry import register_system
from crslab_c2crs.reproducibility import seed_everything


@register_system("C2CRS")
class C2CRSSystem(BaseSystem):
    """Runs the C2-CRS stages on CRSLab's data loaders and evaluator (see module docstring)."""

    def __init__(self, opt, train_dataloader, valid_dataloader, test_dataloader, vocab, side_data,
                 restore_system=False, interact=False, debug=False, tensorboard=False):
        # ablation and start_stage were checked with the config, before any data was loaded
        self.ablation = ABLATIONS[opt.get("ablation") or "none"]
        for flag in ("use_history", "use_kg", "use_review", "coarse_lambda"):
            if flag in self.ablation:
                opt[flag] = self.ablation[flag]
        self.start_stage = opt.get("start_stage") or STAGES[0]
        self.end_stage = opt.get("end_stage") or STAGES[-1]
        super().__init__(opt, train_dataloader, valid_dataloader, test_dataloader, vocab, side_data,
                         restore_system, interact, debug, tensorboard)
        if isinstance(self.model, torch.nn.DataParallel):
            # Per-sample mention and review lists cannot be split across replicas: run on one device.
            self.model = self.model.module
        self.ind2tok = vocab["ind2tok"]
        self.end_token_idx = vocab["end"]
        self.checkpoint_dir = str(checkpoint_dir(opt))
        self.stage_stats: Dict[str, Dict[str, float]] = {}
        # the conv test pass counts each response's movies against its turn's ranking (eval_movie_slots fills them)
        self.slots = slot_evaluation(self)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, stage: str) -> str:
        return os.path.join(self.checkpoint_dir, f"{stage}.pth")

    def save_stage(self, stage: str) -> None:
        state = with_model_config({"model_state_dict": self.model.state_dict(), "stage": stage}, self.model)
        distributed.main_writes(lambda: save_state(state, self.checkpoint_path(stage)))
        logger.info(f"[Saved {stage} checkpoint to {self.checkpoint_path(stage)}]")

    def snapshot_path(self, stage: str, epochs: int) -> str:
        return os.path.join(self.checkpoint_dir, f"{stage}-epoch{epochs}.pth")

    def _save_snapshot(self, stage: str, epochs: int) -> None:
        """The model and optimiser after ``epochs`` epochs of a pre-training stage (``<stage>.save_epochs``): a
        budget to fine-tune from (copied as ``<stage>.pth``), or a point to continue the stage from."""
        state = with_model_config({"model_state_dict": self.model.state_dict(), "stage": stage, "epochs": epochs,
                                   "optimizer_state_dict": self.optimizer.state_dict()}, self.model)
        distributed.main_writes(lambda: save_state(state, self.snapshot_path(stage, epochs)))
        logger.info(f"[Saved the {stage} stage after {epochs} epochs to {self.snapshot_path(stage, epochs)}]")

    def _resume_snapshot(self, stage: str, epochs: Optional[int]) -> int:
        """Restore the model and optimiser of ``<stage>-epoch<epochs>.pth`` (``<stage>.resume_epoch``) and return
        the epoch to continue from; 0 without a snapshot. The continued stage trains the remaining epochs on fresh
        batch orders: it resumes, it does not repeat the uninterrupted run bit for bit."""
        if epochs is None:
            return 0
        path = self.snapshot_path(stage, epochs)
        remedy = f"write it with --set {stage}.save_epochs=[{epochs}] in an earlier run, or drop {stage}.resume_epoch"
        state = load_state(path, self.device, remedy)
        check_stored(state, path, stage, self.model, remedy)
        load_into(self.model, state, "model_state_dict", path, remedy)
        self.optimizer.load_state_dict(state["optimizer_state_dict"])
        logger.info(f"[Continuing the {stage} stage after {epochs} epochs from {path}]")
        return epochs

    def load_stage(self, stage: str) -> None:
        path = self.checkpoint_path(stage)
        remedy = (f"start_stage={self.start_stage} needs the checkpoint of the {stage} stage. Run the earlier stages "
                  f"first (they save it), or set checkpoint_dir to the folder under {crslab.config.SAVE_PATH} that "
                  f"holds it")
        state = load_state(path, self.device, remedy)
        check_stored(state, path, stage, self.model, remedy)
        load_into(self.model, state, "model_state_dict", path, remedy)
        logger.info(f"[Restored the {stage} checkpoint from {path}]")

    # ------------------------------------------------------------------ steps
    def _to_device(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {key: value.to(self.device) for key, value in batch.items()}

    def step(self, batch: Dict[str, torch.Tensor], stage: str, mode: str) -> None:
        self.training_stage = stage  # named by backward when the loss stops being finite
        batch = self._to_device(batch)
        # training steps go through forward (here C2CRSModel.forward, the stage's method): under torchrun the
        # model is DDP's wrapper, which exchanges gradients only for what its forward computed
        if stage in ("coarse", "fine"):
            loss, parts = self.model.forward(batch, f"pretrain_{stage}", mode)
            if mode == "train":
                self.backward(loss)
            else:
                parts.update(self._id_floor_terms(batch, stage))
            for name, value in parts.items():
                self.evaluator.optim_metrics.add(name, AverageMetric(value))
        elif stage == "rec":
            if mode == "train" and self.ablation.get("multitask"):
                # Table 4 "Multi-task": contrastive and recommendation losses optimised together, no pre-training.
                loss, parts = self.model.forward(batch, "pretrain_multitask", mode)
                for name, value in parts.items():
                    self.evaluator.optim_metrics.add(name, AverageMetric(value))
            else:
                loss, scores = self.model.forward(batch, "rec", mode)
            if mode == "train":
                self.backward(loss)
            else:
                self.rec_evaluate(scores, batch["item"])
            self.evaluator.optim_metrics.add("rec_loss", AverageMetric(loss.item()))
        elif stage == "conv":
            if mode == "test":
                _, generated = self.model.converse(batch, mode)
                hypotheses = None if self.slots is None else self.slots(
                    generated, self.model.item_scores(batch), batch["context_entities"])
                self.conv_evaluate(generated, batch["response"], hypotheses)
                return
            loss, _ = self.model.forward(batch, "conv", mode)
            if mode == "train":
                self.backward(loss)
            self.evaluator.optim_metrics.add("gen_loss", AverageMetric(loss.item()))
            self.evaluator.gen_metrics.add("ppl", PPLMetric(loss.item()))
        else:
            raise ValueError(f"unknown stage {stage!r}")

    def _id_floor_terms(self, batch: Dict[str, torch.Tensor], stage: str) -> Dict[str, float]:
        """Beside each validation InfoNCE term, the id floor's (``floor/<term>``) and chance's (``chance/<term>``)
        on the same batch (:mod:`crslab_c2crs.model.c2crs.id_floor`): a term below chance but not below the floor
        shows that ids were matched, not that the views were fused."""
        config = self.model.config
        if getattr(self, "_id_floor", None) is None:
            self._id_floor = IdFloor(config.n_entity, config.kg_dim, config.pad_entity_idx, config.pad_token_idx)
        views = tuple(view for view, used in (("history", config.use_history), ("kg", config.use_kg),
                                               ("review", config.use_review)) if used)
        cpu_batch = {key: value.cpu() for key, value in batch.items()}
        terms = {}
        for level in ("coarse", "fine") if stage == "fine" else ("coarse",):
            for name, value in self._id_floor.terms(cpu_batch, level, config.temperature, views).items():
                terms[f"floor/{name}"] = value
            for name, value in self._id_floor.terms(cpu_batch, level, config.temperature, views, True).items():
                terms[f"chance/{name}"] = value
        return terms

    def rec_evaluate(self, scores: torch.Tensor, items: torch.Tensor) -> None:
        """Score the item ``scores`` (batch, n_items) against the target entity ids ``items`` (batch,)."""
        self.evaluator.evaluate_item_scores(scores, self.model.recommender.item_index(items).tolist())

    def conv_evaluate(self, generated: torch.Tensor, response: torch.Tensor,
                      hypotheses: Optional[List[str]] = None) -> None:
        """Score generated ids (batch, T), or their ``hypotheses`` as text (movie slots), against ``response``
        (batch, Lt) that starts with START."""
        if hypotheses is None:
            hypotheses = [ind2txt(hyp, self.ind2tok, self.end_token_idx) for hyp in generated.tolist()]
        for hyp, ref in zip(hypotheses, response[:, 1:].tolist()):
            self.evaluator.gen_evaluate(hyp, [ind2txt(ref, self.ind2tok, self.end_token_idx)])

    # ------------------------------------------------------------------ stages
    def _stage_opt(self, stage: str) -> Dict[str, Any]:
        if stage not in self.opt:
            raise ConfigError(f"config: section {stage!r} is missing (epoch, batch_size, optimizer)")
        # init_optim pops keys from the optimizer dict: work on a copy so a stage can be rerun.
        return copy.deepcopy(self.opt[stage])

    def _batches(self, loader, stage: str, batch_size: int, shuffle: bool):
        if stage in ("coarse", "fine"):
            return loader.get_pretrain_data(batch_size, shuffle=shuffle)
        if stage == "rec":
            return loader.get_rec_data(batch_size, shuffle=shuffle)
        return loader.get_conv_data(batch_size, shuffle=shuffle)

    def _run_epoch(self, loader, stage: str, mode: str, batch_size: int, epoch: int,
                   report_as: Optional[str] = None) -> Dict[str, float]:
        """One pass of ``stage`` over ``loader``; batches, bucketing and caps follow the loader's batch plan.
        The report is kept in the history under ``report_as`` (default: ``mode``)."""
        self.evaluator.reset_metrics()
        self.model.train(mode == "train")
        loader.batch_plan.stage = stage
        samples = 0
        with torch.set_grad_enabled(mode == "train"):
            for batch in self._batches(loader, stage, batch_size, shuffle=(mode == "train")):
                self.step(batch, stage, mode)
                samples += int(batch["context"].shape[0])
        self.model.kg_cache_clear()
        self.epoch_samples = int(distributed.sum_over_ranks(torch.tensor(samples)))
        return self.evaluator.report(epoch=epoch, mode=report_as or mode)

    @staticmethod
    def _validation_score(stage: str, metrics: Dict[str, float], decoded: Optional[Dict[str, float]],
                          select_on: str) -> Optional[float]:
        """Higher is better; None when the stage does not select a best epoch. ``metrics``: the validation
        report; ``decoded``: the greedy decoding's report on the same batches (conv with ``decode_valid``)."""
        if stage == "rec":
            return metrics.get("hit@1", 0.0) + metrics.get("hit@50", 0.0)
        if stage == "conv":
            return -metrics["gen_loss"] if select_on == "gen_loss" else decoded[select_on]
        return None

    def _changing_state(self) -> Dict[str, torch.Tensor]:
        """Copies of the state entries a stage can change: its trainable parameters and the buffers. A best epoch
        need not copy the frozen parts (in conv, the R-GCN's bases alone are 264 MB). Read from the state dict
        itself (``keep_vars``: parameters stay parameters), whose names are the checkpoints' under DDP too."""
        return {name: value.detach().clone() for name, value in self.model.state_dict(keep_vars=True).items()
                if value.requires_grad or not isinstance(value, torch.nn.Parameter)}

    def _restore(self, state: Dict[str, torch.Tensor]) -> None:
        """Load a :meth:`_changing_state` copy back; a name the model does not have is an error, not a no-op."""
        if not state:  # checked first: an empty copy would load as a no-op
            raise RuntimeError("the best epoch's state does not fit the model: empty")
        unexpected = self.model.load_state_dict(state, strict=False).unexpected_keys
        if unexpected:
            raise RuntimeError(f"the best epoch's state does not fit the model: {unexpected[:3]}")

    def run_stage(self, stage: str) -> None:
        # Seeding per stage makes a run resumed at this stage equal to the uninterrupted run.
        seed_everything(self.opt.get("seed", 42) + STAGES.index(stage), self.opt.get("num_threads"))
        check_free_space(self.checkpoint_dir, self.model, f"the {stage} stage")
        stage_opt = self._stage_opt(stage)
        if stage == "conv":
            # As the reference: the pre-trained KG and history encoders are kept fixed while the decoder learns.
            self.model.freeze(self.opt.get("conv_freeze", ["kg", "history"]) or [])
        epochs, batch_size = stage_opt["epoch"], stage_opt["batch_size"]
        self.init_optim(stage_opt, [p for p in self.model.parameters() if p.requires_grad])
        first_epoch = self._resume_snapshot(stage, stage_opt.get("resume_epoch"))
        best_score, best_state, stale = None, None, 0
        impatience = stage_opt.get("impatience", 3)
        started, samples, train_seconds = time.time(), 0, 0.0
        for epoch in range(first_epoch, epochs):
            logger.info(f"[{stage} epoch {epoch}] train")
            epoch_start = time.time()
            self._run_epoch(self.train_dataloader, stage, "train", batch_size, epoch)
            samples += self.epoch_samples
            train_seconds += time.time() - epoch_start
            logger.info(f"[{stage} epoch {epoch}] {time.time() - epoch_start:.1f}s, "
                        f"{self.epoch_samples / max(time.time() - epoch_start, 1e-9):.1f} samples/s; valid")
            valid = self._run_epoch(self.valid_dataloader, stage, "val", batch_size, epoch)
            decoded = None
            if stage == "conv" and stage_opt.get("decode_valid", False):
                # what greedy decoding makes of this epoch's decoder on the same validation batches (BLEU,
                # Distinct, length per epoch): a conv budget, or the epoch kept (select_on), is chosen on these
                # curves, never on the test set
                logger.info(f"[conv epoch {epoch}] greedy decoding of the validation batches")
                decoded = self._run_epoch(self.valid_dataloader, stage, "test", batch_size, epoch,
                                          report_as="valid_decode")
            if epoch + 1 in (stage_opt.get("save_epochs") or ()):
                self._save_snapshot(stage, epoch + 1)
            score = self._validation_score(stage, valid, decoded, stage_opt.get("select_on", "gen_loss"))
            if stage == "conv" and getattr(self, "scheduler", None) is not None:
                self.scheduler.valid_step(valid["gen_loss"])
            if score is None:
                continue
            if best_score is None or score > best_score:
                best_score, stale = score, 0
                best_state = self._changing_state()
                logger.info(f"[{stage}: new best validation score {score:.4f}]")
            else:
                stale += 1
                if stage_opt.get("early_stop", True) and stale >= impatience:
                    logger.info(f"[{stage}: early stop after {epoch + 1} epochs]")
                    break
        if best_state is not None:
            self._restore(best_state)
        seconds = time.time() - started
        self.stage_stats[stage] = {"epochs": epochs, "seconds": seconds,
                                   "train_samples_per_s": samples / train_seconds if train_seconds > 0 else 0.0}
        logger.info(f"[{stage}: {samples} training samples in {train_seconds:.1f}s "
                    f"({self.stage_stats[stage]['train_samples_per_s']:.1f} samples/s), {seconds:.1f}s in all]")
        self.save_stage(stage)
        if stage in ("rec", "conv"):
            self.test_stage(stage)

    def test_stage(self, stage: str) -> None:
        """The test pass of ``rec`` or ``conv`` with the model as it is, on the split ``eval_split`` names (the
        validation split, with its ``valid_max_batches`` cap, to choose a budget or a decoding setting)."""
        split = self.opt.get("eval_split") or "test"
        logger.info(f"[{stage}] test" + (" on the validation split" if split == "valid" else ""))
        loader = self.valid_dataloader if split == "valid" else self.test_dataloader
        self._run_epoch(loader, stage, "test", self._stage_opt(stage)["batch_size"], -1)

    def fit(self) -> None:
        if self.start_stage == "test":
            # a trained model, tested again (say with block_ngram): nothing is trained or saved
            self.load_stage("conv")
            for stage in ("rec", "conv"):
                self.test_stage(stage)
            return
        first = STAGES.index(self.start_stage)
        # a later start restores the last earlier stage this setting trains (rec after coarse when fine.epoch is
        # 0 or the ablation skips it; nothing when no pre-training stage runs)
        earlier = [stage for stage in STAGES[:first] if self._trains(stage)]
        if earlier:
            self.load_stage(earlier[-1])
        for stage in STAGES[first:STAGES.index(self.end_stage) + 1]:
            if stage in self.ablation.get("skip", ()):
                logger.info(f"[{stage}: skipped by ablation]")
            elif self._trains(stage):
                self.run_stage(stage)

    def _trains(self, stage: str) -> bool:
        """Whether this setting trains ``stage``: not skipped by the ablation, and a pre-training stage only with
        epochs (``fine.epoch: 0`` goes from the coarse stage straight to rec)."""
        if stage in self.ablation.get("skip", ()):
            return False
        return stage in ("rec", "conv") or self._stage_opt(stage)["epoch"] > 0

    def interact(self) -> None:
        from crslab_c2crs.interactive.chat import open_chat

        open_chat(self)
