"""C2-CRS as a CRSLab 0.1.2 model: encoders, contrastive pre-training, recommender and decoder wired together.

Stages (``forward(batch, stage, mode)``) and their losses:

- ``pretrain_coarse``: L_coarse (Eq. 4).
- ``pretrain_fine``: L_fine + λ·L_coarse (Eq. 7).
- ``pretrain_multitask``: L_fine + λ·L_coarse + L_rec, plus L_gen when the batch carries ``response``
  (Table 4 "Multi-task": the pre-training objectives optimised jointly with the task loss instead of before it).
- ``rec``: L_rec (Eq. 9), cross-entropy of the softmax over items.
- ``conv``: the instance-weighted generation loss (Eq. 11-12); greedy generation in test mode.

The batch contract (all tensors on the model's device) is documented in :meth:`C2CRSModel.forward`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Dict, Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from crslab.model.base import BaseModel
from crslab_c2crs import distributed
from crslab_c2crs.model.c2crs.config import FREEZABLE, FUNCTION_FIELDS, C2CRSConfig
from crslab_c2crs.model.c2crs.contrastive import (
    ContrastiveHeads,
    FineUnits,
    coarse_loss,
    entity_units,
    fine_loss,
    first_occurrences,
    units_of_every_rank,
)
from crslab_c2crs.model.c2crs.decoder import (
    C2CRSDecoder,
    DecoderMemory,
    repeatable_tokens,
    teacher_forcing,
    token_weights,
)
from crslab_c2crs.model.c2crs.dropout import use_fast_dropout
from crslab_c2crs.model.c2crs.encoders import (
    HistoryEncoder,
    HistoryEncoding,
    KGEncoder,
    KGEncoding,
    ReviewEncoder,
    ReviewEncoding,
    mention_representations,
)
from crslab_c2crs.model.c2crs.recommender import Recommender
from crslab_c2crs.registry import register_model

Batch = Mapping[str, Tensor]
PRETRAIN_LEVELS = ("coarse", "fine", "multitask")
STAGES = ("pretrain_coarse", "pretrain_fine", "pretrain_multitask", "rec", "conv")
# CRSLab's systems say "val" for validation; "valid" is accepted too.
MODES = ("train", "valid", "val", "test")
# Teacher-forced targets per checkpointed chunk of the decoder's outputs under gradient_checkpointing: 512 x the
# vocabulary (23k) is 47 MB per float tensor, against about 0.2 GB each for a whole batch's ~2,400 targets.
OUTPUT_CHUNK = 512


class Encodings(NamedTuple):
    """The views encoded for one batch; a view is None when disabled or not needed by the stage."""

    history: Optional[HistoryEncoding]
    nodes: Optional[Tensor]
    kg: Optional[KGEncoding]
    review: Optional[ReviewEncoding]


def init_token_embedding(
    vocab_size: int, dim: int, pad_token_idx: int, pretrained: Optional[Sequence[Sequence[float]]] = None
) -> nn.Embedding:
    """The token embedding shared by both text encoders and the decoder (input and tied output).

    Initialised N(0, dim^-1/2) with a zero pad row (the reference used ``kg_dim`` here by mistake), or from
    ``pretrained`` word vectors ``(vocab_size, dim)`` when the dataset provides ``side_data['embedding']``.
    """
    if pretrained is not None:
        weight = torch.as_tensor(pretrained, dtype=torch.float)
        if weight.shape != (vocab_size, dim):
            raise ValueError(f"pretrained embedding has shape {tuple(weight.shape)}, expected ({vocab_size}, {dim})")
        return nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=pad_token_idx)
    embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_token_idx)
    nn.init.normal_(embedding.weight, mean=0.0, std=dim**-0.5)
    with torch.no_grad():
        embedding.weight[pad_token_idx].zero_()
    return embedding


@register_model("C2CRS")
class C2CRSModel(BaseModel):
    """C2-CRS (Zhou et al., WSDM 2022) for CRSLab.

    Args:
        opt: CRSLab options (see :meth:`C2CRSConfig.from_opt` for the keys read).
        device: where the model lives.
        vocab: CRSLab vocabulary dict (``vocab_size``, ``n_entity``, ``pad``, ``start``, ``end``, ``pad_entity``).
        side_data: ``entity_kg`` (``edge`` list of (head, tail, relation), ``n_relation``),
            ``item_entity_ids``; optional ``token_freq`` (per-token-id counts over training responses; without
            it every α is 1), ``token_repeats`` (per token id, how often those responses say it twice in a row:
            the words ``block_stutter`` lets repeat), ``copy_mask`` (bool per token id; without it every token is
            copyable) and
            ``embedding`` (pretrained word vectors).
    """

    # a checkpoint whose config differs from the run's in these fields is refused (crslab_c2crs.checkpoints)
    checked_config_fields = FUNCTION_FIELDS

    def __init__(
        self, opt: Mapping[str, Any], device: torch.device, vocab: Mapping[str, Any], side_data: Mapping[str, Any]
    ) -> None:
        self.config = C2CRSConfig.from_opt(opt, vocab, side_data)
        self.side_data = side_data
        super().__init__(opt, device)
        del self.side_data  # only needed while building; the tensors now live in buffers
        self.to(device)

    def build_model(self) -> None:
        config, side_data = self.config, self.side_data
        edges = torch.as_tensor(side_data["entity_kg"]["edge"], dtype=torch.long).reshape(-1, 3)
        self.token_embedding = init_token_embedding(
            config.vocab_size, config.token_dim, config.pad_token_idx, side_data.get("embedding")
        )
        self.history_encoder = HistoryEncoder(config, self.token_embedding) if config.use_history else None
        # built even without use_kg: the recommender (Eq. 8) is KG-based in every ablation
        self.kg_encoder = KGEncoder(config, edges[:, :2].t(), edges[:, 2])
        self.review_encoder = ReviewEncoder(config, self.token_embedding) if config.use_review else None
        self.heads = ContrastiveHeads(config)
        self.recommender = Recommender(side_data["item_entity_ids"], config.n_entity, config.rec_bias,
                                       *((config.token_dim, config.kg_dim) if config.rec_history_fallback else ()))
        self.decoder = C2CRSDecoder(config, self.token_embedding, side_data.get("copy_mask"))
        special = (config.pad_token_idx, config.start_token_idx, config.end_token_idx)
        alpha = token_weights(
            side_data.get("token_freq"), config.vocab_size, config.token_freq_beta, config.token_freq_gamma, special
        )
        self.register_buffer("token_alpha", alpha, persistent=False)
        self.register_buffer("may_repeat", repeatable_tokens(side_data.get("token_freq"), side_data.get(
            "token_repeats"), config.vocab_size), persistent=False)
        self._kg_cache: Optional[Tuple[tuple, Tensor]] = None
        self.frozen: frozenset = frozenset()
        if config.fast_dropout:
            use_fast_dropout(self)

    def freeze(self, parts: Iterable[str]) -> None:
        """Use the ``kg``, ``history`` and/or ``review`` encoders as fixed feature extractors from now on.

        Their parameters stop requiring gradients, they run without autograd (no backward pass goes through
        them) and in eval mode (no dropout: a fixed feature extractor gives fixed features); the frozen R-GCN
        output is computed once and cached. The token embedding is shared with the decoder (its input and
        output layer), so it keeps training.
        """
        parts = frozenset(parts)
        unknown = parts - set(FREEZABLE)
        if unknown:
            raise ValueError(f"can only freeze {FREEZABLE}, not {sorted(unknown)}")
        shared = {id(p) for p in self.token_embedding.parameters()}
        modules = self._freezable()
        for part in parts:
            if modules[part] is not None:
                for param in modules[part].parameters():
                    if id(param) not in shared:
                        param.requires_grad_(False)
        self.frozen = parts
        self.kg_cache_clear()
        self.train(self.training)

    def _freezable(self) -> Dict[str, Optional[nn.Module]]:
        return {"kg": self.kg_encoder, "history": self.history_encoder, "review": self.review_encoder}

    def _no_grad_if_frozen(self, part: str) -> AbstractContextManager:
        """``torch.no_grad()`` while ``part`` is frozen (no backward pass goes through it), else a no-op context."""
        return torch.no_grad() if part in self.frozen else nullcontext()

    # ------------------------------------------------------------------ KG node matrix

    def encode_kg(self) -> Tensor:
        """Node matrix N ``(n_entity, kg_dim)`` from the full-graph R-GCN.

        In training mode it is recomputed on every call (each stage method calls it once per step). In eval
        mode it is cached across batches and recomputed only when a KG-encoder parameter changed (tracked by
        the parameters' storage and in-place version counters, which optimiser steps and ``load_state_dict``
        bump) or after :meth:`kg_cache_clear`.
        """
        frozen = "kg" in self.frozen
        if self.training and not frozen:
            return self.kg_encoder.encode_graph()
        key = (torch.is_grad_enabled() and not frozen,) + tuple(
            (p.data_ptr(), p._version, p.device) for p in self.kg_encoder.parameters()
        )
        if self._kg_cache is None or self._kg_cache[0] != key:
            with self._no_grad_if_frozen("kg"):
                self._kg_cache = (key, self.kg_encoder.encode_graph())
        return self._kg_cache[1]

    def kg_cache_clear(self) -> None:
        """Drop the cached node matrix (e.g. after an optimiser step done without in-place updates)."""
        self._kg_cache = None

    def train(self, mode: bool = True) -> "C2CRSModel":
        # Entering training frees the cached node matrix (training never reads it); staying in eval keeps it,
        # so repeated eval() calls (interactive mode) do not recompute the full-graph R-GCN.
        frozen = getattr(self, "frozen", frozenset())
        if mode and not self.training and "kg" not in frozen:
            self.kg_cache_clear()
        super().train(mode)
        modules = self._freezable()
        for part in frozen:
            module = modules[part]
            if module is not None:
                module.eval()
        return self

    # ------------------------------------------------------------------ shared encoding

    def _encode(self, batch: Batch, history: bool, kg: bool, review: bool) -> Encodings:
        batch_size = batch["context_entities"].shape[0]
        nodes = self.encode_kg() if kg else None
        with self._no_grad_if_frozen("history"):
            history_encoding = self.history_encoder(batch["context"]) if history else None
        with self._no_grad_if_frozen("review"):
            review_encoding = (self.review_encoder(batch["review"], batch["review_row"], batch_size) if review
                               else None)
        return Encodings(
            history=history_encoding,
            nodes=nodes,
            kg=self.kg_encoder(batch["context_entities"], nodes) if kg else None,
            review=review_encoding,
        )

    def _fine_units(
        self, batch: Batch, enc: Encodings
    ) -> Tuple[Optional[FineUnits], Optional[FineUnits], Optional[FineUnits]]:
        """Word (mention), entity (node) and sentence (review) units, keyed by the entity they are about.

        A view is None when disabled. Every mention is a unit (its state depends on the context); nodes and
        review sentences do not depend on the sample, so each distinct node and each distinct (entity,
        sentence) is one unit. The KG units are the entities seen by the enabled word and sentence views, so
        every KG unit can have a partner. Under ``torchrun`` they are the units of the global batch
        (:func:`units_of_every_rank`; the node matrix is the same on every rank).
        """
        empty = batch["mention_row"].new_zeros(0)
        word = sentence = entity = None
        sentence_tokens = batch["review"][:0]
        if enc.history is not None:
            reps = mention_representations(
                enc.history.states, batch["mention_row"], batch["mention_start"], batch["mention_end"]
            )
            word = FineUnits(reps, batch["mention_entity"])
        if enc.review is not None:
            valid = enc.review.sentence_valid
            sentence_id, review_entity = enc.review.sentence_id[valid], batch["review_entity"][valid]
            # sentence ids are below the number of review rows, which is therefore a safe radix
            first = first_occurrences(review_entity * (enc.review.sentence_id.numel() + 1) + sentence_id)
            sentence = FineUnits(enc.review.sentences[valid][first], review_entity[first])
            sentence_tokens = batch["review"][valid][first]
        word, sentence = units_of_every_rank(word, sentence, sentence_tokens, self.config.pad_token_idx)
        if self.config.use_kg:
            entities = entity_units(empty if word is None else word.keys, empty if sentence is None else sentence.keys)
            entity = FineUnits(enc.nodes[entities], entities)
        return word, entity, sentence

    def _decoder_memory(self, enc: Encodings, batch_size: int) -> DecoderMemory:
        history = (enc.history.states, enc.history.pad_mask) if enc.history is not None else None
        kg = (enc.kg.entity_states, enc.kg.entity_pad_mask, enc.kg.pooled) if self.config.use_kg else None
        review = (
            (enc.review.packed, enc.review.packed_pad_mask, enc.review.pooled) if enc.review is not None else None
        )
        return self.decoder.build_memory(batch_size, history, kg, review)

    def _conv_memory(self, batch: Batch) -> DecoderMemory:
        config = self.config
        enc = self._encode(batch, config.use_history, config.use_kg, config.use_review)
        return self._decoder_memory(enc, batch["context_entities"].shape[0])

    def _generation_loss(self, response: Tensor, memory: DecoderMemory, weighted: bool = True
                         ) -> Tuple[Tensor, Tensor]:
        """The (weighted) loss of Eq. 11 and the argmax predictions ``(batch, len - 1)`` (pad where the target
        is padding) of teacher forcing on ``response`` ``(batch, len)``."""
        inputs, target = teacher_forcing(response)
        alpha = self.token_alpha if weighted else torch.ones_like(self.token_alpha)
        end = self.config.end_token_idx if weighted and self.config.stop_loss == "plain" else None
        # gradient checkpointing also keeps the vocabulary-sized outputs of one chunk of targets alive at a time
        chunk = OUTPUT_CHUNK if self.config.gradient_checkpointing else None
        costs, best, real = self.decoder.forced_costs(inputs, target, memory, alpha, end, chunk)
        loss = distributed.mean_over_ranks(costs.sum(), real.sum())
        preds = torch.full_like(target, self.config.pad_token_idx).masked_scatter(real, best)
        return loss, preds

    # ------------------------------------------------------------------ stages

    def pretrain(self, batch: Batch, level: str) -> Tuple[Tensor, Dict[str, float]]:
        """Contrastive pre-training step.

        Args:
            batch: needs ``context``, ``context_entities``, the ``mention_*`` and ``review*`` tensors; ``item``
                for ``multitask`` (and ``response`` to add the generation loss there).
            level: ``"coarse"`` (L_coarse), ``"fine"`` (L_fine + λ·L_coarse) or ``"multitask"``
                (L_fine + λ·L_coarse + L_rec [+ L_gen]).

        Returns:
            The loss and its components as floats (``loss``, ``coarse_loss``, ``coarse/<view>-<view>``, ...).
        """
        if level not in PRETRAIN_LEVELS:
            raise ValueError(f"pretrain level must be one of {PRETRAIN_LEVELS}, got {level!r}")
        config = self.config
        multitask = level == "multitask"
        enc = self._encode(batch, config.use_history, config.use_kg or multitask, config.use_review)
        coarse, coarse_terms = coarse_loss(
            enc.history.pooled if enc.history is not None else None,
            enc.kg.pooled if config.use_kg else None,
            enc.review.pooled if enc.review is not None else None,
            self.heads.coarse,
            config.temperature,
            valid_C=enc.history.valid if enc.history is not None else None,
            valid_G=enc.kg.valid if config.use_kg else None,
            valid_R=enc.review.valid if enc.review is not None else None,
        )
        parts: Dict[str, Tensor] = {"coarse_loss": coarse}
        parts.update({f"coarse/{pair}": term for pair, term in coarse_terms.items()})
        loss = coarse
        if level in ("fine", "multitask"):
            fine, fine_terms = fine_loss(*self._fine_units(batch, enc), self.heads.fine, config.temperature)
            parts["fine_loss"] = fine
            parts.update({f"fine/{pair}": term for pair, term in fine_terms.items()})
            loss = fine + config.coarse_lambda * coarse
        if multitask:
            users = self.recommender.users(enc.kg.pooled, enc.kg.valid, lambda rows: enc.history.pooled[rows])
            scores = self.recommender(users, enc.nodes)
            parts["rec_loss"] = self.recommender.loss(scores, batch["item"])
            loss = loss + parts["rec_loss"]
            if "response" in batch:
                memory = self._decoder_memory(enc, batch["context_entities"].shape[0])
                parts["gen_loss"], _ = self._generation_loss(batch["response"], memory)
                loss = loss + parts["gen_loss"]
        parts["loss"] = loss
        return loss, {name: float(value.detach()) for name, value in parts.items()}

    def recommend(self, batch: Batch, mode: str) -> Tuple[Tensor, Tensor]:
        """Recommendation (Eq. 8-9).

        Args:
            batch: needs ``context_entities`` and ``item`` (target entity ids).
            mode: ``train``, ``valid`` or ``test`` (the computation is the same).

        Returns:
            Mean cross-entropy over items and scores ``(batch, n_items)``; column j is the item
            ``recommender.item_entity_ids[j]`` (``recommender.item_index`` maps entity ids to columns).
        """
        _check_mode(mode)
        scores = self.item_scores(batch)
        return self.recommender.loss(scores, batch["item"]), scores

    def item_scores(self, batch: Batch) -> Tensor:
        """The recommender's scores ``(batch, n_items)`` of every item for ``batch["context_entities"]`` (Eq. 8),
        without a target: what the conv test pass ranks a response's movies against."""
        nodes = self.encode_kg()
        kg = self.kg_encoder(batch["context_entities"], nodes)

        def history(rows: Tensor) -> Tensor:  # e_C of the rows without entities (rec_history_fallback)
            with self._no_grad_if_frozen("history"):
                return self.history_encoder(batch["context"][rows]).pooled

        return self.recommender(self.recommender.users(kg.pooled, kg.valid, history), nodes)

    def converse(self, batch: Batch, mode: str, chatting: bool = False) -> Tuple[Optional[Tensor], Tensor]:
        """Response generation (Eq. 10-12).

        Args:
            chatting: decoding for the chat, which applies ``block_stutter: chat``.
            batch: needs ``context``, ``context_entities``, ``review``, ``review_row`` and (train/valid)
                ``response``.
            mode: ``train``/``valid``: teacher forcing; ``test``: greedy decoding.

        Returns:
            train: the instance-weighted loss (Eq. 11-12); valid: the plain per-token negative log-likelihood
            (what early stopping and perplexity measure: the weights are a training device); both with the
            argmax predictions ``(batch, response_len - 1)`` aligned with ``response[:, 1:]`` (pad where it is
            padding). test: None and
            generated ids ``(batch, ≤ response_truncate)`` without START.
        """
        _check_mode(mode)
        if mode == "test":
            with torch.no_grad():
                stutter = self.config.block_stutter == "always" or (chatting and self.config.block_stutter == "chat")
                return None, self.decoder.greedy(self._conv_memory(batch), self.config.response_truncate,
                                                 block_ngram=self.config.block_ngram,
                                                 stop_first=self.config.stop_rule == "stop_first",
                                                 may_repeat=self.may_repeat if stutter else None)
        return self._generation_loss(batch["response"], self._conv_memory(batch), weighted=mode == "train")

    def forward(self, batch: Batch, stage: str, mode: str = "train") -> Tuple[Any, Any]:
        """Dispatch to a stage, so the model also works wrapped in ``DataParallel`` (which hides methods).

        The batch contract (any of M mentions or R reviews may be 0):

        - ``context`` ``(B, Lc)`` context tokens padded with 0; ``context_entities`` ``(B, Le)`` padded with 0.
        - ``mention_row``, ``mention_start``, ``mention_end``, ``mention_entity`` ``(M,)``: entity mentions in
          ``context`` as batch row, token span ``[start, end)`` and entity id.
        - ``review`` ``(R, Lr)`` review sentence tokens padded with 0; ``review_row``, ``review_entity`` ``(R,)``.
        - ``item`` ``(B,)`` target movie entity id (pretrain/rec); ``response`` ``(B, L)`` START ... END (conv).

        Args:
            batch: the tensors above.
            stage: one of :data:`STAGES`.
            mode: ``train``, ``valid`` or ``test`` (ignored by the pretraining stages).
        """
        if stage.startswith("pretrain_") and stage in STAGES:
            return self.pretrain(batch, stage[len("pretrain_") :])
        if stage == "rec":
            return self.recommend(batch, mode)
        if stage == "conv":
            return self.converse(batch, mode)
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
