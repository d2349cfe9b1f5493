"""``MultiHeadAttention`` through ``F.scaled_dot_product_attention`` equals the explicit softmax(QK^T)V it replaced."""
from __future__ import annotations

import math
from typing import Optional

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from crslab_c2crs.model.c2crs.transformer import MultiHeadAttention


def explicit_attention(module: MultiHeadAttention, query: Tensor, memory: Tensor,
                       key_pad_mask: Optional[Tensor] = None, causal: bool = False) -> Tensor:
    """The attention as it was computed before SDPA (scores, masked_fill with the dtype's min, softmax)."""
    q = module._split_heads(module.q_proj(query)) / math.sqrt(module.head_dim)
    k = module._split_heads(module.k_proj(memory))
    v = module._split_heads(module.v_proj(memory))
    scores = q @ k.transpose(-1, -2)
    fill = torch.finfo(scores.dtype).min
    if key_pad_mask is not None:
        scores = scores.masked_fill(key_pad_mask[:, None, None, :], fill)
    if causal:
        q_len, k_len = scores.shape[-2:]
        future = torch.ones(q_len, k_len, dtype=torch.bool).triu(k_len - q_len + 1)
        scores = scores.masked_fill(future, fill)
    out = module.out_proj((F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(query.shape))
    if key_pad_mask is not None:
        out = out * (~key_pad_mask).any(dim=1)[:, None, None].to(out.dtype)
    return out


@pytest.fixture
def attention() -> MultiHeadAttention:
    torch.manual_seed(0)
    return MultiHeadAttention(dim=12, n_heads=3, dropout=0.0).eval()


def test_cross_attention_with_padding_and_a_row_without_keys(attention):
    query, memory = torch.randn(3, 4, 12), torch.randn(3, 6, 12)
    pad = torch.tensor([[False] * 6, [False] * 2 + [True] * 4, [True] * 6])
    out = attention(query, memory, key_pad_mask=pad)
    torch.testing.assert_close(out, explicit_attention(attention, query, memory, pad), rtol=1e-5, atol=1e-6)
    assert torch.all(out[2] == 0)


def test_causal_self_attention_with_padding(attention):
    x = torch.randn(2, 5, 12)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    out = attention(x, x, key_pad_mask=pad, causal=True)
    torch.testing.assert_close(out, explicit_attention(attention, x, x, pad, causal=True), rtol=1e-5, atol=1e-6)


def test_incremental_decoding_with_a_cache_equals_the_full_causal_pass(attention):
    x = torch.randn(2, 5, 12)
    full = explicit_attention(attention, x, x, causal=True)
    cache: dict = {}
    steps = [attention(x[:, t:t + 1], x[:, t:t + 1], causal=True, cache=cache) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)
