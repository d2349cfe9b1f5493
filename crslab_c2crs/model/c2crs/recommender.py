"""Recommendation module (paper §4.3.1, Eq. 8-9)."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crslab_c2crs import distributed


class Recommender(nn.Module):
    """Scores items by ``e_u · n_i + b_i`` over the item set only (Eq. 8), trained with cross-entropy (Eq. 9).

    The user representation ``e_u`` is the self-attentive pooling of the pre-trained node representations of
    the context entities (the KG view e_G, as the paper prescribes). The per-item bias ``b_i`` is not in Eq. 8
    but in the authors' code (``F.linear(user_rep, item_rep, self.rec_bias.bias)``) and in CRSLab's KGSF and
    KBRD: without it a context with no entity (e_u = 0, one ReDial test sample in ten) scores every movie 0 and
    can never be hit; with it such a context ranks by a learned prior. Besides the bias, the module holds the
    item set and the entity-id -> item-index map CRSLab's evaluator needs.

    With ``history_dim`` (``rec_history_fallback``) a context without entities takes the history view's e_C, mapped
    by a linear layer into the KG space, as its e_u (:meth:`users`); the layer starts at zero.

    Args:
        item_entity_ids: entity id of every item (movie); its position is the item index.
        n_entity: number of KG entities.
        bias: learn the per-item bias ``b`` ``(n_items,)`` (zeros at start); False: Eq. 8 as printed.
        history_dim, kg_dim: the history view's and the KG view's widths, for the history fallback; None: none.
    """

    def __init__(self, item_entity_ids: Sequence[int], n_entity: int, bias: bool = True,
                 history_dim: Optional[int] = None, kg_dim: Optional[int] = None) -> None:
        super().__init__()
        items = torch.as_tensor(list(item_entity_ids), dtype=torch.long)
        if items.numel() == 0:
            raise ValueError("side_data['item_entity_ids'] is empty: there is nothing to recommend")
        if int(items.min()) < 0 or int(items.max()) >= n_entity:
            raise ValueError(f"side_data['item_entity_ids'] holds ids outside the KG's [0, {n_entity})")
        if torch.unique(items).numel() != items.numel():
            raise ValueError("side_data['item_entity_ids'] lists an entity twice")
        item_index = torch.full((n_entity,), -1, dtype=torch.long)
        item_index[items] = torch.arange(items.numel())
        self.register_buffer("item_entity_ids", items, persistent=False)
        self.register_buffer("entity_to_item", item_index, persistent=False)
        self.bias = nn.Parameter(torch.zeros(items.numel())) if bias else None
        self.history_fallback = None
        if history_dim is not None:
            self.history_fallback = nn.Linear(history_dim, kg_dim)
            nn.init.zeros_(self.history_fallback.weight)
            nn.init.zeros_(self.history_fallback.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # A zero bias and no bias score alike: checkpoints written before the bias existed load as a zero bias, and
        # an untrained (zero) bias, as every pre-training checkpoint holds, loads into a bias-free recommender.
        # A trained bias does not fit a bias-free recommender and is reported as an unexpected key.
        # The history fallback alike: untrained it is zero, so a checkpoint without it (every pre-training one) loads.
        optional = {prefix + "bias": self.bias}
        if self.history_fallback is not None:
            optional.update({prefix + f"history_fallback.{name}": value
                             for name, value in self.history_fallback.named_parameters()})
        else:
            optional.update({key: None for key in state_dict if key.startswith(prefix + "history_fallback.")})
        for key, parameter in optional.items():
            if parameter is not None and key not in state_dict:
                state_dict[key] = torch.zeros_like(parameter)
            elif parameter is None and key in state_dict and not bool(state_dict[key].any()):
                del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def n_items(self) -> int:
        return self.item_entity_ids.numel()

    def item_index(self, entity_ids: Tensor) -> Tensor:
        """Map item entity ids ``(batch,)`` to item indices ``(batch,)`` (columns of :meth:`forward`'s scores).

        Raises:
            ValueError: an id is not an item.
        """
        index = self.entity_to_item[entity_ids]
        if bool((index < 0).any()):
            bad = entity_ids[index < 0].tolist()
            raise ValueError(f"recommendation targets {bad} are not in side_data['item_entity_ids']")
        return index

    def users(self, pooled: Tensor, valid: Tensor, history: Callable[[Tensor], Tensor]) -> Tensor:
        """e_u ``(batch, kg_dim)``: the KG view's ``pooled`` e_G; with the history fallback, the rows without a
        context entity (``valid`` ``(batch,)`` False) take their history view mapped into the KG space instead.
        ``history(rows)`` gives e_C ``(n, history_dim)`` of the batch rows ``rows`` ``(n,)``; it runs only for them."""
        if self.history_fallback is None or bool(valid.all()):
            return pooled
        rows = (~valid).nonzero(as_tuple=True)[0]
        return pooled.index_put((rows,), self.history_fallback(history(rows)).to(pooled.dtype))

    def forward(self, user: Tensor, nodes: Tensor) -> Tensor:
        """``user``: e_u ``(batch, kg_dim)``; ``nodes``: N ``(n_entity, kg_dim)`` -> scores ``(batch, n_items)``."""
        return F.linear(user, nodes[self.item_entity_ids], self.bias)

    def loss(self, scores: Tensor, item_entity: Tensor) -> Tensor:
        """Mean cross-entropy of the softmax over items; ``item_entity``: target entity ids ``(batch,)``. Under
        ``torchrun``: this rank's part of the global batch's mean (:func:`distributed.mean_over_ranks`)."""
        if not distributed.active():
            return F.cross_entropy(scores, self.item_index(item_entity))
        total = F.cross_entropy(scores, self.item_index(item_entity), reduction="sum")
        return distributed.mean_over_ranks(total, torch.tensor(scores.shape[0], device=scores.device))
