"""Encoders of the three context-data views (paper §4.1): conversation history, knowledge graph, reviews."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crslab_c2crs.model.c2crs.config import C2CRSConfig
from crslab_c2crs.model.c2crs.transformer import TransformerEncoder
from crslab_c2crs.model.rgcn import build_rgcn


class SelfAttentivePooling(nn.Module):
    """Self-attentive pooling of Eq. 2: ``e = X^T softmax(tanh(X W_sa) b)`` over the non-pad rows.

    A row whose elements are all padding pools to the zero vector.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        self.score = nn.Parameter(torch.empty(dim, 1))
        # gain as in CRSLab's SelfAttentionSeq, which the reference uses
        nn.init.xavier_uniform_(self.weight, gain=1.414)
        nn.init.xavier_uniform_(self.score, gain=1.414)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        """``x``: ``(batch, n, dim)``, ``pad_mask``: ``(batch, n)`` True at padding -> ``(batch, dim)``."""
        scores = (torch.tanh(x @ self.weight) @ self.score).squeeze(-1)
        scores = scores.masked_fill(pad_mask, torch.finfo(scores.dtype).min)
        # all-pad rows would otherwise average their padding; zero their weights instead
        weights = F.softmax(scores, dim=-1) * (~pad_mask).to(x.dtype)
        return torch.einsum("bn,bnd->bd", weights, x)


def pack_by_row(values: Tensor, row: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Scatter a flat list of per-sample items into a padded batch, keeping their order within a sample.

    Args:
        values: ``(n_items, dim)``.
        row: ``(n_items,)`` batch row of every item.
        batch_size: number of rows ``B``.

    Returns:
        packed ``(B, n_max, dim)`` (``n_max`` = most items in one row, at least 1) and its pad mask
        ``(B, n_max)``, True where a slot holds no item.
    """
    counts = torch.bincount(row, minlength=batch_size)
    n_max = max(int(counts.max()) if row.numel() else 0, 1)
    order = torch.argsort(row, stable=True)
    sorted_row = row[order]
    first = counts.cumsum(0) - counts
    slot = torch.arange(row.numel(), device=row.device) - first[sorted_row]
    packed = values.new_zeros(batch_size, n_max, values.shape[-1])
    packed = packed.index_put((sorted_row, slot), values[order])
    pad_mask = torch.ones(batch_size, n_max, dtype=torch.bool, device=row.device)
    pad_mask[sorted_row, slot] = False
    return packed, pad_mask


def _transformer_encoder(config: C2CRSConfig, token_embedding: nn.Embedding) -> TransformerEncoder:
    return TransformerEncoder(
        token_embedding,
        pad_token_idx=config.pad_token_idx,
        n_heads=config.n_heads,
        n_layers=config.n_layers,
        ffn_size=config.ffn_size,
        dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        relu_dropout=config.relu_dropout,
        n_positions=config.n_positions,
        embeddings_scale=config.embeddings_scale,
        learn_positional_embeddings=config.learn_positional_embeddings,
        gradient_checkpointing=config.gradient_checkpointing,
        autocast_dtype=torch.bfloat16 if config.mixed_precision == "bf16" else None,
    )


class HistoryEncoding(NamedTuple):
    """Output of :class:`HistoryEncoder`.

    Attributes:
        states: contextual word representations F ``(batch, seq_len, token_dim)``; zero at padding.
        pad_mask: ``(batch, seq_len)`` True at padding.
        pooled: conversation-history representation e_C ``(batch, token_dim)``.
        valid: ``(batch,)`` True where the context has at least one token.
    """

    states: Tensor
    pad_mask: Tensor
    pooled: Tensor
    valid: Tensor


class HistoryEncoder(nn.Module):
    """Conversation-history encoder, Eq. 1-2: Transformer over the flattened context + self-attentive pooling."""

    def __init__(self, config: C2CRSConfig, token_embedding: nn.Embedding) -> None:
        super().__init__()
        self.transformer = _transformer_encoder(config, token_embedding)
        self.pooling = SelfAttentivePooling(config.token_dim)

    def forward(self, context: Tensor) -> HistoryEncoding:
        """``context``: ``(batch, seq_len)`` token ids, padded with the pad id on either side."""
        states, pad_mask = self.transformer(context)
        return HistoryEncoding(states, pad_mask, self.pooling(states, pad_mask), (~pad_mask).any(dim=1))


class KGEncoding(NamedTuple):
    """Output of :class:`KGEncoder`.

    Attributes:
        pooled: graph-based user representation e_G ``(batch, kg_dim)``; zero for a sample without entities.
        entity_states: node representations of the context entities ``(batch, n_context_entities, kg_dim)``.
        entity_pad_mask: ``(batch, n_context_entities)`` True at the pad entity.
        valid: ``(batch,)`` True where the sample has at least one context entity.
    """

    pooled: Tensor
    entity_states: Tensor
    entity_pad_mask: Tensor
    valid: Tensor


class KGEncoder(nn.Module):
    """Knowledge-graph encoder, Eq. 3: one featureless R-GCN layer over the whole KG, then σ, then
    self-attentive pooling over the user's context entities.

    Args:
        config: model configuration.
        edge_index: ``(2, n_edges)`` source and target node of every KG edge.
        edge_type: ``(n_edges,)`` relation of every edge.
    """

    def __init__(self, config: C2CRSConfig, edge_index: Tensor, edge_type: Tensor) -> None:
        super().__init__()
        self.pad_entity_idx = config.pad_entity_idx
        self.rgcn = build_rgcn(config.n_entity, config.kg_dim, config.n_relation, config.num_bases, config.fast_rgcn,
                               aggr={"mean": "mean", "sum": "add"}[config.kg_aggregation])
        self.activation = {
            "relu": nn.ReLU(),
            "tanh": nn.Tanh(),
            "sigmoid": nn.Sigmoid(),
            "identity": nn.Identity(),
        }[config.kg_activation]
        # the graph is data, not state: keep it out of checkpoints
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.register_buffer("edge_type", edge_type.long(), persistent=False)
        self.pooling = SelfAttentivePooling(config.kg_dim)

    def encode_graph(self) -> Tensor:
        """Node representation matrix N ``(n_entity, kg_dim)`` (runs the full-graph R-GCN)."""
        return self.activation(self.rgcn(None, self.edge_index, self.edge_type))

    def forward(self, context_entities: Tensor, nodes: Tensor) -> KGEncoding:
        """``context_entities``: ``(batch, n_context_entities)`` entity ids padded with the pad entity;
        ``nodes``: N from :meth:`encode_graph`."""
        pad_mask = context_entities.eq(self.pad_entity_idx)
        states = nodes[context_entities].masked_fill(pad_mask.unsqueeze(-1), 0.0)
        return KGEncoding(self.pooling(states, pad_mask), states, pad_mask, (~pad_mask).any(dim=1))


class ReviewEncoding(NamedTuple):
    """Output of :class:`ReviewEncoder`.

    Attributes:
        sentences: sentence representations E ``(n_reviews, token_dim)``.
        sentence_id: ``(n_reviews,)`` index of the row's distinct token sequence (equal ids: equal sentences).
        sentence_valid: ``(n_reviews,)`` False for a review row that holds only padding.
        packed: E regrouped per sample ``(batch, n_max, token_dim)``.
        packed_pad_mask: ``(batch, n_max)`` True at empty slots.
        pooled: review-based user representation e_R ``(batch, token_dim)``; zero without reviews.
        valid: ``(batch,)`` True where the sample has at least one review sentence.
    """

    sentences: Tensor
    sentence_id: Tensor
    sentence_valid: Tensor
    packed: Tensor
    packed_pad_mask: Tensor
    pooled: Tensor
    valid: Tensor


class ReviewEncoder(nn.Module):
    """Review encoder (§4.1.3): a Transformer (parameters separate from the history encoder's) with
    self-attentive pooling per sentence, then sentence-level self-attention over each sample's sentences."""

    def __init__(self, config: C2CRSConfig, token_embedding: nn.Embedding) -> None:
        super().__init__()
        self.transformer = _transformer_encoder(config, token_embedding)
        self.token_pooling = SelfAttentivePooling(config.token_dim)
        self.sentence_pooling = SelfAttentivePooling(config.token_dim)

    def forward(self, review: Tensor, review_row: Tensor, batch_size: int) -> ReviewEncoding:
        """``review``: ``(n_reviews, review_len)`` token ids; ``review_row``: ``(n_reviews,)`` batch row."""
        # Popular movies' sentences recur across the batch's samples: encode each distinct sentence once.
        if review.numel():
            unique, inverse = torch.unique(review, dim=0, return_inverse=True)
        else:
            unique, inverse = review, torch.arange(review.shape[0], device=review.device)
        states, pad_mask = self.transformer(unique)
        sentences = self.token_pooling(states, pad_mask)[inverse]
        sentence_valid = (~pad_mask).any(dim=1)[inverse]
        packed, packed_pad_mask = pack_by_row(sentences[sentence_valid], review_row[sentence_valid], batch_size)
        pooled = self.sentence_pooling(packed, packed_pad_mask)
        return ReviewEncoding(
            sentences, inverse, sentence_valid, packed, packed_pad_mask, pooled, (~packed_pad_mask).any(dim=1)
        )


def mention_representations(states: Tensor, row: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Word-view representation of every entity mention: the mean of F over its token span.

    Args:
        states: F ``(batch, seq_len, dim)``.
        row, start, end: ``(n_mentions,)`` batch row and token span ``[start, end)``; ``end > start``.

    Returns:
        ``(n_mentions, dim)``.
    """
    lengths = end - start
    if bool((lengths <= 0).any()):
        raise ValueError("every entity mention needs a non-empty token span (mention_end > mention_start)")
    # one entry per (mention, token) so the sum is exact and needs no (n_mentions, seq_len, dim) tensor
    mention = torch.repeat_interleave(torch.arange(row.numel(), device=row.device), lengths)
    first = lengths.cumsum(0) - lengths
    position = start[mention] + torch.arange(mention.numel(), device=row.device) - first[mention]
    token_states = states[row[mention], position]
    sums = states.new_zeros(row.numel(), states.shape[-1]).index_add(0, mention, token_states)
    return sums / lengths.unsqueeze(-1).to(states.dtype)

