"""Coarse-to-fine contrastive pre-training objectives (paper §4.2, Eq. 4-7).

Both levels use the symmetric NT-Xent form of Eq. 5 with in-batch negatives: for a pair of views the units
of both views are L2-normalised and pooled; every unit is an anchor, its positives are the units of the
*other* view that describe the same thing (the same user at the coarse level, the same entity of the same
user at the fine level), and its negatives are all remaining units of both views in the batch.

View names are ``"history"`` (conversation: e_C / word F_j), ``"kg"`` (e_G / entity N_e) and
``"review"`` (e_R / sentence E_k).
"""
from __future__ import annotations

from itertools import combinations
from typing import Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crslab_c2crs import distributed
from crslab_c2crs.model.c2crs.config import HEAD_NORMS, C2CRSConfig

VIEWS = ("history", "kg", "review")


class ProjectionHead(nn.Module):
    """Linear(d, d) -> [BatchNorm] -> ReLU -> Linear(d, kg_dim): maps one view into the shared contrastive space.

    ``norm="batch"`` is SimCLR's head. At initialisation the views' vectors are dominated by a part common to
    every user (the first layer's bias against R-GCN node vectors of norm ~0.05: cosine 0.93-1.00 between users),
    so InfoNCE sits at chance until that part is unlearnt; standardising each feature over the batch removes it
    from the first step. ``"none"`` is the reference's head.
    """

    def __init__(self, in_dim: int, out_dim: int, norm: str = "batch") -> None:
        super().__init__()
        if norm not in HEAD_NORMS:
            raise ValueError(f"norm must be one of {HEAD_NORMS}, got {norm!r}")
        self.hidden = nn.Linear(in_dim, in_dim)
        self.norm = nn.BatchNorm1d(in_dim) if norm == "batch" else None
        self.out = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(n, in_dim)`` -> ``(n, out_dim)``."""
        h = self.hidden(x)
        # batch statistics need two rows; fewer (possible for sparse views) use the running statistics
        if self.norm is not None and (x.shape[0] > 1 or not self.training):
            h = self.norm(h)
        elif self.norm is not None:
            h = F.batch_norm(h, self.norm.running_mean, self.norm.running_var, self.norm.weight, self.norm.bias)
        return self.out(F.relu(h))


class ContrastiveHeads(nn.Module):
    """The six projection heads (reference notes §2.6): one per view and level, for the enabled views only.

    Attributes:
        coarse: ``ModuleDict`` view -> head applied to e_C / e_G / e_R.
        fine: ``ModuleDict`` view -> head applied to mention states F_j / nodes N_e / sentences E_k.
    """

    def __init__(self, config: C2CRSConfig) -> None:
        super().__init__()
        in_dims = {"history": config.token_dim, "kg": config.kg_dim, "review": config.token_dim}
        enabled = {"history": config.use_history, "kg": config.use_kg, "review": config.use_review}
        views = [view for view in VIEWS if enabled[view]]
        self.coarse = nn.ModuleDict(
            {view: ProjectionHead(in_dims[view], config.kg_dim, config.head_norm) for view in views})
        self.fine = nn.ModuleDict(
            {view: ProjectionHead(in_dims[view], config.kg_dim, config.head_norm) for view in views})


def _zero_loss(*tensors: Tensor) -> Tensor:
    """A zero that stays connected to the inputs, so callers can always ``backward()``."""
    return sum((t.sum() * 0.0 for t in tensors), torch.zeros((), device=tensors[0].device))


def info_nce(x: Tensor, y: Tensor, temperature: float) -> Tensor:
    """Symmetric NT-Xent (SimCLR) loss of Eq. 5 between two aligned views.

    Args:
        x, y: ``(n, dim)``; row i of ``x`` and row i of ``y`` are the positive pair.
        temperature: τ.

    Returns:
        Scalar: mean over the ``2n`` anchors of ``-log softmax`` of the positive among all other ``2n - 1``
        rows (the positive and the ``2n - 2`` negatives from both views). Zero when ``n == 0``.
    """
    n = x.shape[0]
    if n == 0:
        return _zero_loss(x, y)
    z = F.normalize(torch.cat([x, y]), dim=-1)
    logits = (z @ z.t()) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n, device=z.device), torch.arange(n, device=z.device)])
    return F.cross_entropy(logits, target)


def keyed_info_nce(x: Tensor, y: Tensor, key_x: Tensor, key_y: Tensor, temperature: float) -> Tensor:
    """Multi-positive NT-Xent between two views whose units are matched by key.

    For an anchor in one view its positives are the units of the *other* view with the same key; units of
    its own view with the same key are semantically the same and are left out of the softmax (they would
    be false negatives); every unit with a different key, in either view, is a negative. Anchors without a
    positive do not contribute. Per anchor the loss averages ``-log softmax`` over its positives
    (SupCon "out" form), so with unique keys this equals :func:`info_nce`.

    Args:
        x: ``(n_x, dim)``, y: ``(n_y, dim)`` unit representations.
        key_x: ``(n_x,)``, key_y: ``(n_y,)`` integer keys.
        temperature: τ.

    Returns:
        Scalar mean over anchors with at least one positive; zero if there are none.
    """
    z = F.normalize(torch.cat([x, y]), dim=-1)
    key = torch.cat([key_x, key_y])
    view = torch.cat([key_x.new_zeros(key_x.shape), key_y.new_ones(key_y.shape)])
    same_key = key[:, None] == key[None, :]
    same_view = view[:, None] == view[None, :]
    positive = same_key & ~same_view
    candidate = ~(same_key & same_view)
    n_positive = positive.sum(dim=1)
    anchor = n_positive > 0
    if not bool(anchor.any()):
        return _zero_loss(x, y)
    # only anchor rows: a row without candidates would give logsumexp(-inf) and NaN gradients
    positive, candidate = positive[anchor], candidate[anchor]
    logits = (z[anchor] @ z.t()) / temperature
    log_prob = logits - torch.logsumexp(logits.masked_fill(~candidate, float("-inf")), dim=1, keepdim=True)
    positive_log_prob = log_prob.masked_fill(~positive, 0.0).sum(dim=1)
    return -(positive_log_prob / n_positive[anchor]).mean()


def coarse_loss(
    e_C: Optional[Tensor],
    e_G: Optional[Tensor],
    e_R: Optional[Tensor],
    heads: nn.ModuleDict,
    temperature: float,
    valid_C: Optional[Tensor] = None,
    valid_G: Optional[Tensor] = None,
    valid_R: Optional[Tensor] = None,
) -> tuple[Tensor, Dict[str, Tensor]]:
    """Coarse-grained loss, Eq. 4: the SUM of :func:`info_nce` over the pairs of enabled user views.

    A sample without KG entities (or without reviews) has a constant e_G (e_R): using it would make all such
    samples false negatives of each other and a meaningless positive, so those rows are dropped from the
    pairs involving that view.

    Under ``torchrun`` the views of every rank's share are gathered first (:func:`distributed.gather_rows`): the
    negatives and the heads' batch statistics are those of the global batch, and every rank computes its loss.

    Args:
        e_C: ``(batch, token_dim)`` history view, or None when the view is disabled; likewise
            e_G ``(batch, kg_dim)`` and e_R ``(batch, token_dim)``.
        heads: ``ContrastiveHeads.coarse``.
        temperature: τ.
        valid_C, valid_G, valid_R: ``(batch,)`` BoolTensors, True where the sample has data for that view
            (None: all rows valid).

    Returns:
        The loss and the per-pair terms keyed ``"history-kg"`` etc.
    """
    views = {
        name: (distributed.gather_rows(rep), None if valid is None else distributed.gather_rows(valid))
        for name, rep, valid in (("history", e_C, valid_C), ("kg", e_G, valid_G), ("review", e_R, valid_R))
        if rep is not None
    }
    if not views:
        raise ValueError("coarse_loss needs at least one enabled view")
    terms: Dict[str, Tensor] = {}
    for a, b in combinations(views, 2):
        (x, valid_x), (y, valid_y) = views[a], views[b]
        rows = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for valid in (valid_x, valid_y):
            if valid is not None:
                rows = rows & valid
        terms[f"{a}-{b}"] = info_nce(heads[a](x[rows]), heads[b](y[rows]), temperature)
    reps = [rep for rep, _ in views.values()]
    total = sum(terms.values(), _zero_loss(*reps))
    return total, terms


class FineUnits(NamedTuple):
    """Fine-grained semantic units of one view.

    Attributes:
        reps: ``(n_units, dim)`` unprojected representations (F_j mention states, N_e nodes or E_k sentences).
        keys: ``(n_units,)`` the entity the unit is about.
    """

    reps: Tensor
    keys: Tensor


def fine_loss(
    word: Optional[FineUnits],
    entity: Optional[FineUnits],
    sentence: Optional[FineUnits],
    heads: nn.ModuleDict,
    temperature: float,
) -> tuple[Tensor, Dict[str, Tensor]]:
    """Fine-grained loss, Eq. 6: the SUM of :func:`keyed_info_nce` over the pairs of enabled unit views.

    Word-entity-sentence triples are the units with the same key (the same entity); negatives are all units
    of the batch about other entities, from the same and from other samples. Units about the same entity are
    never negatives of each other: a node or a review sentence is the same vector in every sample that
    mentions its entity, so a per-sample key would count exact copies of the positive as negatives (46-57% of
    the anchors of a real batch of 256 had one). An empty view, or a pair without any matching units,
    contributes zero.

    Args:
        word, entity, sentence: the units of each view, or None when the view is disabled.
        heads: ``ContrastiveHeads.fine``.
        temperature: τ.

    Returns:
        The loss and the per-pair terms keyed ``"history-kg"`` etc. (view names as in :data:`VIEWS`).
    """
    views = {
        name: units
        for name, units in (("history", word), ("kg", entity), ("review", sentence))
        if units is not None
    }
    if not views:
        raise ValueError("fine_loss needs at least one enabled view")
    terms: Dict[str, Tensor] = {}
    for a, b in combinations(views, 2):
        terms[f"{a}-{b}"] = keyed_info_nce(
            heads[a](views[a].reps), heads[b](views[b].reps), views[a].keys, views[b].keys, temperature
        )
    total = sum(terms.values(), _zero_loss(*(units.reps for units in views.values())))
    return total, terms


def units_of_every_rank(word: Optional[FineUnits], sentence: Optional[FineUnits], sentence_tokens: Tensor,
                        pad: int) -> tuple[Optional[FineUnits], Optional[FineUnits]]:
    """The word and sentence units of the global batch, from this rank's share of it (unchanged in a single
    process, :mod:`crslab_c2crs.distributed`): every rank's mentions, and each distinct (entity, sentence) once
    even when several ranks' shares hold it, as one process would count it.

    Args:
        word, sentence: this rank's units (None: view disabled); sentences already distinct within the share.
        sentence_tokens: ``(n_sentences, length)`` the token ids of each sentence unit, padded with ``pad``.

    Returns:
        The global word and sentence units (the sentences' order: rank, then first occurrence).
    """
    if not distributed.active():
        return word, sentence
    if word is not None:
        word = FineUnits(distributed.gather_cat(word.reps), distributed.gather_cat(word.keys))
    if sentence is not None:
        reps, keys = distributed.gather_cat(sentence.reps), distributed.gather_cat(sentence.keys)
        tokens = distributed.gather_cat(sentence_tokens, fill=pad)
        if keys.numel():
            identity = torch.cat([keys.unsqueeze(1), tokens], dim=1)
            first = first_occurrences(torch.unique(identity, dim=0, return_inverse=True)[1])
            reps, keys = reps[first], keys[first]
        sentence = FineUnits(reps, keys)
    return word, sentence


def entity_units(mention_entity: Tensor, review_entity: Tensor) -> Tensor:
    """The KG-view units: each distinct entity of the batch that is mentioned in a context or has a review.

    A node vector does not depend on the user, so the same entity in two samples is one unit: two copies
    would be identical vectors, one of them counted as a negative of the other's positive.

    Args:
        mention_entity: ``(n_mentions,)``; review_entity: ``(n_reviews,)``. Empty for a disabled view.

    Returns:
        ``(n_units,)`` sorted distinct entity ids (the units' keys and node indices).
    """
    return torch.unique(torch.cat([mention_entity, review_entity]))


def first_occurrences(keys: Tensor) -> Tensor:
    """Index of the first occurrence of every distinct value of ``keys`` ``(n,)``, ordered by value."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    position = torch.arange(keys.numel(), device=keys.device)
    first = torch.full((unique.numel(),), keys.numel(), dtype=torch.long, device=keys.device)
    return first.scatter_reduce(0, inverse, position, reduce="amin")
