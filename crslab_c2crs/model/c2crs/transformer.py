"""Transformer building blocks shared by the C2-CRS encoders and decoder.

Written with plain ``torch.nn`` primitives rather than reusing CRSLab's ``TransformerEncoder`` so that the
decoder can cache keys/values incrementally and so that padding is handled without the in-place
``create_position_codes`` CRSLab 0.1.2 ships. Numerically the layers follow CRSLab/ParlAI: post-norm residual
blocks, ReLU FFN, frozen sinusoidal (or learned) positions and embeddings scaled by ``sqrt(dim)``.

Masks follow one convention throughout: a ``pad_mask`` is a BoolTensor that is ``True`` at padding.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

AttentionCache = Dict[str, Tensor]


def sinusoid_table(n_positions: int, dim: int) -> Tensor:
    """Frozen sinusoidal position codes ``(n_positions, dim)`` as in "Attention Is All You Need" / CRSLab."""
    position = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.pow(10000.0, -2.0 * torch.arange(dim // 2, dtype=torch.float64) / dim)
    table = torch.zeros(n_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1 : 2 * (dim // 2) : 2] = torch.cos(position * inv_freq)
    return table.float()


def positions_from_pad_mask(pad_mask: Tensor) -> Tensor:
    """Position of every token counted over non-pad tokens only: ``(batch, seq_len)`` LongTensor.

    Counting only real tokens makes the encoding independent of where (left or right) and how much padding
    was added; pad positions get 0 and are masked anyway.
    """
    real = (~pad_mask).long()
    return (real.cumsum(dim=1) - 1).clamp(min=0)


class TokenPositionEmbedding(nn.Module):
    """Token embedding (shared, passed in) times ``sqrt(dim)`` plus position codes, then dropout."""

    def __init__(
        self,
        token_embedding: nn.Embedding,
        n_positions: int,
        dropout: float,
        embeddings_scale: bool,
        learn_positional_embeddings: bool,
    ) -> None:
        super().__init__()
        dim = token_embedding.embedding_dim
        self.token_embedding = token_embedding
        self.scale = math.sqrt(dim) if embeddings_scale else 1.0
        self.n_positions = n_positions
        if learn_positional_embeddings:
            self.learned_positions: Optional[nn.Embedding] = nn.Embedding(n_positions, dim)
            nn.init.normal_(self.learned_positions.weight, 0.0, dim**-0.5)
        else:
            self.learned_positions = None
            self.register_buffer("sinusoid", sinusoid_table(n_positions, dim), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """``tokens``, ``positions``: ``(batch, seq_len)`` -> ``(batch, seq_len, dim)``."""
        if self.learned_positions is not None:
            position_codes = self.learned_positions(positions)
        else:
            position_codes = self.sinusoid[positions]
        return self.dropout(self.token_embedding(tokens) * self.scale + position_codes)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product multi-head attention with optional causal mask and key/value cache.

    A query whose keys are all padding gets a zero output (instead of an average over padding), so a sample
    without any memory of some kind passes through that attention block unchanged by its residual.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"attention dim {dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        for linear in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_normal_(linear.weight)
        self.dropout = nn.Dropout(dropout)

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        memory: Tensor,
        key_pad_mask: Optional[Tensor] = None,
        causal: bool = False,
        cache: Optional[AttentionCache] = None,
        static_memory: bool = False,
    ) -> Tensor:
        """Attend from ``query`` to ``memory``.

        Args:
            query: ``(batch, q_len, dim)``.
            memory: ``(batch, k_len, dim)``; for self-attention the same tensor as ``query``.
            key_pad_mask: ``(batch, k_len)`` True at padding keys, or None.
            causal: mask keys later than the query; queries are the *last* ``q_len`` positions of the keys,
                so this also holds when cached keys precede the new ones.
            cache: dict filled/extended in place with ``"k"``/``"v"`` of shape ``(batch, heads, len, head_dim)``.
            static_memory: the memory is the same at every decoding step, so cached keys/values are reused
                as they are instead of being extended.

        Returns:
            ``(batch, q_len, dim)``.
        """
        q = self._split_heads(self.q_proj(query))
        if cache is not None and static_memory and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k = self._split_heads(self.k_proj(memory))
            v = self._split_heads(self.v_proj(memory))
            if cache is not None and not static_memory and "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            if cache is not None:
                cache["k"], cache["v"] = k, v

        # one boolean mask, True where a query may attend (F.scaled_dot_product_attention's convention)
        allowed: Optional[Tensor] = None
        has_key: Optional[Tensor] = None
        if key_pad_mask is not None:
            has_key = (~key_pad_mask).any(dim=1)
            # a row without keys would softmax over nothing (NaN): let it attend to its padding, zeroed below
            allowed = (~key_pad_mask | ~has_key[:, None])[:, None, None, :]
        if causal:
            q_len, k_len = q.shape[-2], k.shape[-2]
            past = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).tril(k_len - q_len)
            allowed = past if allowed is None else allowed & past
        # under autocast the projections are bfloat16; attention runs in float32, whose CPU backward is faster
        with torch.autocast(q.device.type, enabled=False):
            out = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=allowed, dropout_p=self.dropout.p if self.training else 0.0
            )
        out = self.out_proj(out.transpose(1, 2).reshape(query.shape))
        if has_key is not None:
            out = out * has_key[:, None, None].to(out.dtype)
        return out


class FeedForward(nn.Module):
    """Position-wise ReLU FFN ``dim -> ffn_size -> dim``."""

    def __init__(self, dim: int, ffn_size: int, relu_dropout: float) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, ffn_size)
        self.lin2 = nn.Linear(ffn_size, dim)
        nn.init.xavier_uniform_(self.lin1.weight)
        nn.init.xavier_uniform_(self.lin2.weight)
        self.relu_dropout = nn.Dropout(relu_dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(self.relu_dropout(F.relu(self.lin1(x))))


class EncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer: self-attention block then FFN block."""

    def __init__(
        self, dim: int, n_heads: int, ffn_size: int, dropout: float, attention_dropout: float, relu_dropout: float
    ) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(dim, n_heads, attention_dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_size, relu_dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        """``x``: ``(batch, seq_len, dim)``, ``pad_mask``: ``(batch, seq_len)`` -> ``(batch, seq_len, dim)``."""
        x = self.norm1(x + self.dropout(self.attention(x, x, key_pad_mask=pad_mask)))
        x = self.norm2(x + self.dropout(self.ffn(x)))
        return x.masked_fill(pad_mask.unsqueeze(-1), 0.0)


class TransformerEncoder(nn.Module):
    """Stack of post-norm encoder layers over token ids; pad states are zero.

    Args:
        token_embedding: shared token embedding ``(vocab_size, dim)``.
        pad_token_idx: the padding id.
        gradient_checkpointing: in training, keep only each layer's input for backward and recompute the layer
            then (``torch.utils.checkpoint``, with the dropout masks of the forward pass restored): the same
            gradients in a fraction of the memory, for one more forward pass of the layers.
        autocast_dtype: None (float32) or a lower precision the layers compute in under ``torch.autocast``
            (``mixed_precision``); their output is returned in float32.
        Remaining arguments as in :class:`~crslab_c2crs.model.c2crs.config.C2CRSConfig`.
    """

    def __init__(
        self,
        token_embedding: nn.Embedding,
        pad_token_idx: int,
        n_heads: int,
        n_layers: int,
        ffn_size: int,
        dropout: float,
        attention_dropout: float,
        relu_dropout: float,
        n_positions: int,
        embeddings_scale: bool,
        learn_positional_embeddings: bool,
        gradient_checkpointing: bool = False,
        autocast_dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        dim = token_embedding.embedding_dim
        self.pad_token_idx = pad_token_idx
        self.gradient_checkpointing = gradient_checkpointing
        self.autocast_dtype = autocast_dtype
        self.embed = TokenPositionEmbedding(
            token_embedding, n_positions, dropout, embeddings_scale, learn_positional_embeddings
        )
        self.layers = nn.ModuleList(
            EncoderLayer(dim, n_heads, ffn_size, dropout, attention_dropout, relu_dropout) for _ in range(n_layers)
        )

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``tokens``: ``(batch, seq_len)`` -> states ``(batch, seq_len, dim)`` and pad mask ``(batch, seq_len)``."""
        if tokens.shape[1] > self.embed.n_positions:
            raise ValueError(
                f"input of {tokens.shape[1]} tokens exceeds n_positions={self.embed.n_positions}; "
                "raise n_positions or truncate the input"
            )
        pad_mask = tokens.eq(self.pad_token_idx)
        x = self.embed(tokens, positions_from_pad_mask(pad_mask)).masked_fill(pad_mask.unsqueeze(-1), 0.0)
        recompute = self.gradient_checkpointing and torch.is_grad_enabled()
        with torch.autocast(x.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            for layer in self.layers:
                x = checkpoint(layer, x, pad_mask, use_reentrant=False) if recompute else layer(x, pad_mask)
        return x.float(), pad_mask
