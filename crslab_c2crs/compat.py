"""Every patch this plugin makes to CRSLab 0.1.2, in one place.

CRSLab 0.1.2 (the PyPI release) was written for Python 3.6-3.8, torch 1.x and transformers 4.1. On Python 3.11,
torch 2.x and today's libraries some of its code fails loudly and some fails silently. Each patch below has a
one-line reason and a test in ``tests/test_compat.py`` that fails without it. Nothing in site-packages is edited:
the patches rebind names in CRSLab's modules when ``crslab_c2crs`` is imported. :func:`apply` is idempotent.

The run-time rebindings at the end follow one run's choices instead: its data root (:func:`relocate`), its R-GCN
kernel for KGSF and KBRD (:func:`use_fast_rgcn_in_baselines`), the systems ``run_crslab`` builds
(:func:`keep_built_systems`) and the temporary folder of the run (:func:`private_tmpdir`).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from crslab_c2crs import distributed
from crslab_c2crs.data.layout import build_hint
from crslab_c2crs.errors import MissingDataError
from crslab_c2crs.paths import ENV_VAR, crslab_paths

_APPLIED: List[str] = []


def _module(name: str):
    # CRSLab's package __init__ files star-import their children, which shadows submodule attributes
    # (``crslab.model.crs.kgsf.modules`` is a class there), so modules are always fetched by name.
    return importlib.import_module(name)


def patch_transformers_adamw() -> None:
    """transformers' own AdamW is deprecated and removed in 4.50, yet CRSLab imports it: use torch's AdamW."""
    import transformers

    transformers.AdamW = torch.optim.AdamW
    if "crslab.system.base" in sys.modules:
        sys.modules["crslab.system.base"].optim_class["AdamW"] = torch.optim.AdamW


def create_position_codes(n_pos: int, dim: int, out: torch.Tensor) -> None:
    """Fill ``out`` (n_pos, dim) with the frozen sinusoidal position codes, as CRSLab does."""
    position = torch.arange(n_pos, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.pow(10000.0, -2.0 * torch.arange(dim // 2, dtype=torch.float64) / dim)
    angles = position * inv_freq
    # CRSLab writes into a Parameter that requires grad, which torch 2.x forbids outside no_grad.
    with torch.no_grad():
        out[:, 0::2] = torch.sin(angles).type_as(out)
        out[:, 1::2] = torch.cos(angles).type_as(out)
    out.detach_()
    out.requires_grad = False


def patch_position_codes() -> None:
    """``create_position_codes`` writes in place into a leaf that requires grad: raises on torch 2.x."""
    for name in ("crslab.model.utils.modules.transformer", "crslab.model.crs.kgsf.modules"):
        _module(name).create_position_codes = create_position_codes


def patch_reduce_lr_on_plateau() -> None:
    """CRSLab passes ``verbose`` positionally to torch's ReduceLROnPlateau, which no longer takes it."""
    scheduler_module = _module("crslab.system.utils.lr_scheduler")
    cls = scheduler_module.ReduceLROnPlateau

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, verbose=False, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8, warmup_steps=0):
        scheduler_module.LRScheduler.__init__(self, optimizer, warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold,
            threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)

    cls.__init__ = __init__


def patch_metric_numbers() -> None:
    """Metrics assert ``isinstance(x, (int, float))``, which numpy scalars (e.g. float32) fail."""
    metric_cls = _module("crslab.evaluator.metrics.base").Metric

    def as_number(cls, obj):
        if isinstance(obj, (torch.Tensor, np.generic)):
            obj = obj.item()
        if not isinstance(obj, (int, float)):
            raise TypeError(f"metric value must be a number, got {type(obj).__name__}: {obj!r}")
        return obj

    metric_cls.as_number = classmethod(as_number)


def offline_tokenize(text: str) -> List[str]:
    """Tokenize one user turn like the ReDial training data, without any nltk data package."""
    from crslab_c2crs.data.tokenize import tokenize

    return tokenize(text)


def patch_interactive_tokenizer() -> None:
    """``BaseSystem.nltk_tokenize`` calls ``nltk.download('punkt')`` on every turn, which fails offline."""
    base = _module("crslab.system.base").BaseSystem
    base.nltk_tokenize = lambda self, text: offline_tokenize(text)


def patch_plain_backward() -> None:
    """``loss.backward(loss.clone().detach())`` scales every gradient by the loss value: use a plain backward. And a
    NaN or infinite training loss went on for hours into zero metrics: stop at once, naming the stage and step
    (the systems set ``training_stage`` in ``step``)."""
    from crslab_c2crs.errors import TrainingError

    base = _module("crslab.system.base").BaseSystem

    def backward(self, loss: torch.Tensor) -> None:
        stage = getattr(self, "training_stage", None) or "training"
        steps = self.__dict__.setdefault("_training_steps", {})
        steps[stage] = steps.get(stage, 0) + 1
        if not bool(torch.isfinite(loss.detach()).all()):
            raise TrainingError(f"the {stage} stage's training loss became {float(loss.detach())} at step "
                                f"{steps[stage]}; the run stops here. Lower that stage's learning rate (--set "
                                f"{stage}.optimizer.lr=...) or check the settings that changed")
        self._zero_grad()
        if self.update_freq > 1:
            self._number_grad_accum = (self._number_grad_accum + 1) % self.update_freq
            loss = loss / self.update_freq
        loss.backward()
        self._update_params()

    base.backward = backward


def patch_kbrd_user_embedding() -> None:
    """KBRD 0.1.2 returns a zero user embedding for every non-empty entity list (inverted test, fixed upstream)."""
    kbrd = _module("crslab.model.crs.kbrd.kbrd").KBRDModel

    def encode_user(self, entity_lists, kg_embedding):
        user_repr_list = []
        for entity_list in entity_lists:
            if entity_list is None or len(entity_list) == 0:
                user_repr_list.append(torch.zeros(self.user_emb_dim, device=self.device))
                continue
            user_repr_list.append(self.kg_attn(kg_embedding[entity_list]))
        return torch.stack(user_repr_list, dim=0)

    kbrd.encode_user = encode_user


def stutter_masked(model: Any, logits: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """``logits`` ``(batch, 1, V)`` of the next word with each row's last word banned when the chat gave ``model``
    a ``may_repeat`` mask (``block_stutter``, :mod:`crslab_c2crs.interactive.adapters`); unchanged otherwise.
    ``generated`` ``(batch, t)`` starts with START."""
    may_repeat = getattr(model, "may_repeat", None)
    if may_repeat is None:
        return logits
    from crslab_c2crs.model.c2crs.decoder import stutter_ends

    return logits.masked_fill(stutter_ends(generated[:, 1:], may_repeat).unsqueeze(1), float("-inf"))


def patch_baseline_stutter() -> None:
    """KBRD's and KGSF's greedy decoding loops as CRSLab 0.1.2 writes them, with :func:`stutter_masked` applied to
    each step's logits: the chat's ``block_stutter`` rule, which their loops leave no other place for."""
    kbrd = _module("crslab.model.crs.kbrd.kbrd").KBRDModel
    kgsf = _module("crslab.model.crs.kgsf.kgsf").KGSFModel
    linear = torch.nn.functional.linear

    def decode_greedy(self, encoder_states, user_embedding):
        bsz = encoder_states[0].shape[0]
        xs = self._starts(bsz)
        incr_state = None
        logits = []
        for _ in range(self.longest_label):
            scores, incr_state = self.decoder(xs, encoder_states, incr_state)
            scores = scores[:, -1:, :]
            token_logits = linear(scores, self.token_embedding.weight)
            user_logits = self.user_proj_2(torch.relu(self.user_proj_1(user_embedding))).unsqueeze(1)
            _, preds = stutter_masked(self, token_logits + user_logits, xs).max(dim=-1)
            logits.append(scores)
            xs = torch.cat([xs, preds], dim=1)
            if ((xs == self.end_token_idx).sum(dim=1) > 0).sum().item() == bsz:
                break
        return torch.cat(logits, 1), xs

    def decode_greedy_with_kg(self, token_encoding, entity_reps, entity_emb_attn, entity_mask, word_reps,
                              word_emb_attn, word_mask):
        batch_size = token_encoding[0].shape[0]
        inputs = self._starts(batch_size).long()
        incr_state = None
        logits = []
        for _ in range(self.response_truncate):
            dialog_latent, incr_state = self.conv_decoder(inputs, token_encoding, word_reps, word_mask,
                                                          entity_reps, entity_mask, incr_state)
            dialog_latent = dialog_latent[:, -1:, :]
            copy_latent = self.copy_norm(torch.cat((entity_emb_attn.unsqueeze(1), word_emb_attn.unsqueeze(1),
                                                    dialog_latent), dim=-1))
            copy_logits = self.copy_output(copy_latent) * self.copy_mask.unsqueeze(0).unsqueeze(0)
            sum_logits = copy_logits + linear(dialog_latent, self.token_embedding.weight)
            preds = stutter_masked(self, sum_logits, inputs).argmax(dim=-1).long()
            logits.append(sum_logits)
            inputs = torch.cat((inputs, preds), dim=1)
            if ((inputs == self.end_token_idx).sum(dim=-1) > 0).sum().item() == batch_size:
                break
        return torch.cat(logits, dim=1), inputs

    kbrd.decode_greedy = decode_greedy
    kgsf._decode_greedy_with_kg = decode_greedy_with_kg


def patch_offline_build() -> None:
    """CRSLab's ``build`` deletes a folder whose ``.built`` version differs and retries a dead download for
    minutes: fail in seconds instead, naming the folder and the command that builds it, and delete nothing."""
    download = _module("crslab.download")

    def build(dpath, dfile, version=None):
        if download.check_build(dpath, version):
            return
        raise MissingDataError(
            f"CRSLab needs the folder {dpath} (resource version {version}) and it is "
            f"{'built with another version' if download.check_build(dpath) else 'missing or not built'}. "
            f"Nothing is downloaded. {build_hint(dpath)}")

    download.build = build
    for name, module in list(sys.modules.items()):
        if name.startswith("crslab.") and getattr(module, "build", None) is not None and module is not download:
            if getattr(module.build, "__module__", None) == "crslab.download":
                module.build = build


def patch_batching() -> None:
    """``BaseDataLoader.get_data`` pads random batches to their longest context (3x the real tokens on ReDial),
    shows the uncapped batch count, and knows no batch caps: every loader gets a
    :class:`~crslab_c2crs.data.batching.BatchPlan` (length bucketing, per-stage caps) from the system's options."""
    from math import ceil

    from loguru import logger
    from tqdm import tqdm

    from crslab_c2crs.data.batching import SPLITS, BatchPlan

    system_cls = _module("crslab.system.base").BaseSystem
    loader_cls = _module("crslab.data.dataloader.base").BaseDataLoader
    init = system_cls.__init__

    def __init__(self, opt, train_dataloader, valid_dataloader, test_dataloader, *args, **kwargs):
        for loader, split in zip((train_dataloader, valid_dataloader, test_dataloader), SPLITS):
            loader.batch_plan = BatchPlan.from_opt(opt, split)
        init(self, opt, train_dataloader, valid_dataloader, test_dataloader, *args, **kwargs)

    def get_data(self, batch_fn, batch_size, shuffle=True, process_fn=None):
        dataset = process_fn() if process_fn is not None else self.dataset
        dataset = dataset[:ceil(len(dataset) * self.scale)]
        plan = getattr(self, "batch_plan", None) or BatchPlan("valid", bucketing=False)
        stage = plan.stage_of(batch_fn)
        distributed.align_random_state()
        # under torchrun every rank draws the same plan of global batches and keeps its share of each
        batches = distributed.shard(plan.batches(dataset, batch_size, shuffle, stage))
        logger.debug(f"[{plan.split} {stage}: {len(dataset)} samples, {len(batches)} batches]")
        for batch in tqdm(batches, total=len(batches), desc=f"{plan.split} {stage}", leave=False):
            yield batch_fn([dataset[index] for index in batch])

    system_cls.__init__ = __init__
    loader_cls.get_data = get_data


# Model attributes that decoding reads but a state dict does not hold: KBRD decodes up to the longest training
# response it has seen (``longest_label``, 1 until trained), so a restored KBRD without it answers in one token.
SAVED_ATTRIBUTES = ("longest_label",)
ATTRIBUTES_KEY = "model_attributes"


def patch_saved_systems() -> None:
    """``-ss`` writes ``<save>/<model>.pth`` in place, shared by every run of a model (a crash leaves half a file),
    and ``-rs`` fails on a missing, damaged or mismatched file with a traceback: save atomically to the run's
    ``checkpoint_dir`` and restore with one-line errors (:mod:`crslab_c2crs.checkpoints`), with the model's
    :data:`SAVED_ATTRIBUTES`."""
    from loguru import logger

    from crslab_c2crs.checkpoints import check_stored, load_into, load_state, save_state, with_model_config
    from crslab_c2crs.paths import saved_system_file

    base = _module("crslab.system.base").BaseSystem
    parts = (("model", "model_state_dict"), ("rec_model", "rec_state_dict"), ("conv_model", "conv_state_dict"),
             ("policy_model", "policy_state_dict"))

    def save_model(self) -> None:
        path = saved_system_file(self.opt)
        state = {key: getattr(self, name).state_dict() for name, key in parts if hasattr(self, name)}
        model = distributed.bare(getattr(self, "model", None))
        state[ATTRIBUTES_KEY] = {name: getattr(model, name) for name in SAVED_ATTRIBUTES if hasattr(model, name)}
        distributed.main_writes(lambda: save_state(with_model_config(state, getattr(self, "model", None)), path))
        logger.info(f"[Saved the system to {path}]")

    def restore_model(self) -> None:
        path = saved_system_file(self.opt)
        remedy = "train and save it again with -ss and this config, or point checkpoint_dir at the right run"
        state = load_state(path, self.device, remedy)
        check_stored(state, path, None, getattr(self, "model", None), remedy)
        for name, key in parts:
            if hasattr(self, name):
                load_into(getattr(self, name), state, key, path, remedy)
        model = distributed.bare(getattr(self, "model", None))
        for name, value in state.get(ATTRIBUTES_KEY, {}).items():
            setattr(model, name, value)
        logger.info(f"[Restored the system from {path}]")

    base.save_model = save_model
    base.restore_model = restore_model


class GlobalMeanCrossEntropy(torch.nn.Module):
    """CRSLab's mean cross-entropy (over the targets that are not ``ignore_index``) as this rank's part of the
    global batch's mean (:func:`~crslab_c2crs.distributed.mean_over_ranks`)."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits`` ``(n, classes)``, ``target`` ``(n,)`` -> scalar."""
        total = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="sum")
        return distributed.mean_over_ranks(total, target.ne(self.ignore_index).sum())


def _kgsf_info_loss(model: Any, word_attn_rep: torch.Tensor, entity_graph_representations: torch.Tensor,
                    labels: torch.Tensor) -> Optional[torch.Tensor]:
    """KGSF's mutual-information loss (its squared error summed over every sample and entity, over the number of
    entity labels) as this rank's part of the global batch's; None when no rank's batch has an entity label, as
    KGSF returns None for a batch without any. ``labels``: ``(batch, n_entity)`` one-hot."""
    if int(distributed.sum_over_ranks(labels.sum())) == 0:
        return None
    predict = F.linear(model.infomax_norm(word_attn_rep), entity_graph_representations, model.infomax_bias.bias)
    return distributed.mean_over_ranks(model.infomax_loss(predict, labels), labels.sum())


def _kgsf_pretrain_infomax(self, batch):
    """KGSF 0.1.2's ``pretrain_infomax`` with the loss of :func:`_kgsf_info_loss`."""
    words, entity_labels = batch
    if int(distributed.sum_over_ranks(entity_labels.sum())) == 0:
        return None
    entity_graph_representations = self.entity_encoder(None, self.entity_edge_idx, self.entity_edge_type)
    word_graph_representations = self.word_encoder(self.word_kg_embedding.weight, self.word_edges)
    word_attn_rep = self.word_self_attn(word_graph_representations[words], words.eq(self.pad_word_idx))
    return _kgsf_info_loss(self, word_attn_rep, entity_graph_representations, entity_labels)


def _kgsf_recommend(self, batch, mode):
    """KGSF 0.1.2's ``recommend`` with the mutual-information term of :func:`_kgsf_info_loss`."""
    context_entities, context_words, entities, movie = batch
    entity_graph_representations = self.entity_encoder(None, self.entity_edge_idx, self.entity_edge_type)
    word_graph_representations = self.word_encoder(self.word_kg_embedding.weight, self.word_edges)
    entity_attn_rep = self.entity_self_attn(entity_graph_representations[context_entities],
                                            context_entities.eq(self.pad_entity_idx))
    word_attn_rep = self.word_self_attn(word_graph_representations[context_words],
                                        context_words.eq(self.pad_word_idx))
    user_rep = self.gate_layer(entity_attn_rep, word_attn_rep)
    rec_scores = F.linear(user_rep, entity_graph_representations, self.rec_bias.bias)  # (bs, #entity)
    rec_loss = self.rec_loss(rec_scores, movie)
    return rec_loss, _kgsf_info_loss(self, word_attn_rep, entity_graph_representations, entities), rec_scores


def share_baseline_losses(model: Any) -> None:
    """Under DDP, CRSLab's KGSF and KBRD compute each mean loss over the global batch
    (:func:`~crslab_c2crs.distributed.mean_over_ranks`): their cross-entropies become
    :class:`GlobalMeanCrossEntropy` and KGSF's mutual-information loss :func:`_kgsf_info_loss`, whose count of
    entity labels is the global batch's even where a rank's share has none. Other models are left as they are."""
    kgsf = _module("crslab.model.crs.kgsf.kgsf").KGSFModel
    kbrd = _module("crslab.model.crs.kbrd.kbrd").KBRDModel
    if not isinstance(model, (kgsf, kbrd)) or isinstance(model.rec_loss, GlobalMeanCrossEntropy):
        return
    model.rec_loss = GlobalMeanCrossEntropy()
    model.conv_loss = GlobalMeanCrossEntropy(model.pad_token_idx)
    if isinstance(model, kgsf):
        model.pretrain_infomax = types.MethodType(_kgsf_pretrain_infomax, model)
        model.recommend = types.MethodType(_kgsf_recommend, model)


def patch_distributed_training() -> None:
    """CRSLab 0.1.2 knows only ``DataParallel``, which cannot split C2-CRS's per-sample lists: under ``torchrun``
    ``init_optim`` (called at the start of every stage, after the stage froze what it keeps fixed) wraps the model
    in :class:`~crslab_c2crs.distributed.DistributedModel` for the stage's trainable parameters, and KGSF's and
    KBRD's losses become global-batch means (:func:`share_baseline_losses`). A single process is left as it was."""
    base = _module("crslab.system.base").BaseSystem
    init_optim = base.init_optim

    def distributed_init_optim(self, opt, parameters) -> None:
        init_optim(self, opt, parameters)
        if distributed.active() and hasattr(self, "model"):
            self.model = distributed.wrap(self.model)
            share_baseline_losses(self.model.module)

    base.init_optim = distributed_init_optim


def register_evaluators() -> None:
    """The stock ``conv`` evaluator passes ``tensorboard`` twice, and both it and ``standard`` download a fastText
    file and count character n-grams: our evaluator, registered under both names beside its class, replaces them."""
    _module("crslab_c2crs.evaluator")


PATCHES: Dict[str, Callable[[], None]] = {
    "transformers_adamw": patch_transformers_adamw,
    "position_codes": patch_position_codes,
    "reduce_lr_on_plateau": patch_reduce_lr_on_plateau,
    "metric_numbers": patch_metric_numbers,
    "interactive_tokenizer": patch_interactive_tokenizer,
    "plain_backward": patch_plain_backward,
    "kbrd_user_embedding": patch_kbrd_user_embedding,
    "baseline_stutter": patch_baseline_stutter,
    "offline_build": patch_offline_build,
    "evaluators": register_evaluators,
    "saved_systems": patch_saved_systems,
    "batching": patch_batching,
    "distributed_training": patch_distributed_training,
}


def apply() -> List[str]:
    """Apply every patch once (later calls do nothing) and return the names of the applied patches."""
    if not _APPLIED:
        # Avoid TensorFlow probing by transformers/tensorboard: slow and irrelevant here.
        os.environ.setdefault("USE_TF", "0")
        for name, patch in PATCHES.items():
            patch()
            _APPLIED.append(name)
    return list(_APPLIED)


# ---------------------------------------------------------------------------------------------- run-time rebindings
_BASELINE_RGCN_MODULES = ("crslab.model.crs.kgsf.kgsf", "crslab.model.crs.kbrd.kbrd")


def relocate(data_root: Path) -> Dict[str, str]:
    """CRSLab derives every path from its site-packages folder: point its path constants, in ``crslab.config`` and
    in each loaded ``crslab.*`` module that imported them, at ``data_root``; returns them. Modules imported later
    copy the new values from ``crslab.config``."""
    import crslab.config

    paths = crslab_paths(Path(data_root))
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "crslab" or name.startswith("crslab.")):
            continue
        for const, value in paths.items():
            if hasattr(module, const):
                setattr(module, const, value)
    for const, value in paths.items():
        setattr(crslab.config, const, value)
    os.environ[ENV_VAR] = str(data_root)
    return paths


def use_fast_rgcn_in_baselines(enabled: bool) -> None:
    """PyG's ``RGCNConv`` with featureless input dominates KGSF's and KBRD's training time: with ``enabled`` (the
    ``fast_rgcn`` key) they build :class:`~crslab_c2crs.model.rgcn.PyGCompatibleBasisFirstRGCNConv`, the same
    function, else PyG's again. Affects models constructed afterwards; idempotent."""
    from torch_geometric.nn import RGCNConv

    from crslab_c2crs.model.rgcn import PyGCompatibleBasisFirstRGCNConv

    replacement = PyGCompatibleBasisFirstRGCNConv if enabled else RGCNConv
    for name in _BASELINE_RGCN_MODULES:
        _module(name).RGCNConv = replacement


@contextlib.contextmanager
def keep_built_systems(on_build: Callable[[Any], None]) -> Iterator[List[Any]]:
    """``run_crslab`` builds its system and drops it, so the test metrics it reached were lost: while the context
    is open ``quick_start.get_system`` also calls ``on_build(system)`` and keeps each system in the yielded list."""
    quick_start = _module("crslab.quick_start.quick_start")
    get_system = quick_start.get_system
    systems: List[Any] = []

    def keep_system(*args: Any, **kwargs: Any) -> Any:
        systems.append(get_system(*args, **kwargs))
        on_build(systems[-1])
        return systems[-1]

    quick_start.get_system = keep_system
    try:
        yield systems
    finally:
        quick_start.get_system = get_system


@contextlib.contextmanager
def private_tmpdir(prefix: str = "crslab_c2crs_") -> Iterator[Path]:
    """Torch-geometric writes generated ``propagate_*.py`` files to the temporary folder: while the context is
    open, ``$TMPDIR`` and :mod:`tempfile` use the yielded folder of this run, removed and restored afterwards."""
    previous_tmpdir = os.environ.get("TMPDIR")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ["TMPDIR"] = tmp
        tempfile.tempdir = tmp
        try:
            yield Path(tmp)
        finally:
            tempfile.tempdir = None
            if previous_tmpdir is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous_tmpdir
