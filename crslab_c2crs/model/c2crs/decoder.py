"""Response generation module (paper §4.3.2, Eq. 10-12): knowledge- and review-aware Transformer decoder with a
KGSF-style copy mechanism and the instance-weighted cross-entropy loss."""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from crslab_c2crs.model.c2crs.config import C2CRSConfig
from crslab_c2crs.model.c2crs.transformer import AttentionCache, FeedForward, MultiHeadAttention, TokenPositionEmbedding

LayerCache = Dict[str, AttentionCache]
MEMORIES = ("history", "kg", "review")


def token_weights(token_freq: Optional[Sequence[int]], vocab_size: int, beta: float, gamma: float,
                  special_ids: Sequence[int] = ()) -> Tensor:
    """Instance weights α of Eq. 12: ``max(γ, β / f_w)`` if ``f_w >= β`` else 1.

    Args:
        token_freq: count of every token id in the training responses (shorter lists mean count 0 for the
            remaining ids), or None for uniform weights.
        vocab_size: number of token ids.
        beta, gamma: β and γ.
        special_ids: ids that are not words (START, END, PAD, UNK): weight 1 whatever their count, since f_w
            is a word frequency (an END counted once per response got α = 0.04 and the decoder rarely stopped).

    Returns:
        ``(vocab_size,)`` float weights.
    """
    if token_freq is None:
        return torch.ones(vocab_size)
    freq = torch.as_tensor(list(token_freq), dtype=torch.float64)
    if freq.numel() > vocab_size:
        raise ValueError(f"side_data['token_freq'] has {freq.numel()} entries for a vocabulary of {vocab_size}")
    freq = torch.cat([freq, freq.new_zeros(vocab_size - freq.numel())])
    frequent = freq >= beta
    alpha = torch.ones(vocab_size, dtype=torch.float64)
    alpha[frequent] = torch.clamp(beta / freq[frequent], min=gamma)
    alpha[list(special_ids)] = 1.0
    return alpha.float()


def teacher_forcing(response: Tensor) -> Tuple[Tensor, Tensor]:
    """Decoder inputs and targets of a ``[START] tokens [END]`` right-padded ``response`` ``(batch, len)``:
    ``response[:, :-1]`` (starting with START) and ``response[:, 1:]`` (START is never a target)."""
    return response[:, :-1], response[:, 1:]


def repeated_ngram_ends(generated: Tensor, n: int, vocab_size: int) -> Tensor:
    """The tokens that would repeat an n-gram of their row if generated next.

    Args:
        generated: ``(batch, t)`` tokens generated so far (without START).
        n: n-gram length (``>= 1``).
        vocab_size: ``V``.

    Returns:
        BoolTensor ``(batch, V)``: token w is True in row b when ``generated[b, -(n-1):] + [w]`` already occurs
        in ``generated[b]``.
    """
    banned = torch.zeros(generated.shape[0], vocab_size, device=generated.device)
    if generated.shape[1] < n:
        return banned.bool()
    windows = generated.unfold(1, n, 1)  # (batch, t - n + 1, n)
    prefix = generated[:, generated.shape[1] - n + 1:]  # the last n - 1 tokens
    match = (windows[:, :, :-1] == prefix.unsqueeze(1)).all(dim=-1)
    return banned.scatter_add_(1, windows[:, :, -1], match.to(banned.dtype)).gt(0)


# A word may follow itself in a reply when the training responses repeat it so at least this often, in count and
# as a share of its occurrences. On the ReDial training responses (3,200 conversations) that admits "!", "bye",
# "very", "hey" and "love"; "it it", "you you" (typos, 0.1%) and "so so" (2 of 534) stay blocked.
STUTTER_MIN_COUNT = 3
STUTTER_MIN_RATE = 0.005


def repeatable_tokens(token_freq: Optional[Sequence[int]], token_repeats: Optional[Sequence[int]],
                      vocab_size: int) -> Tensor:
    """BoolTensor ``(vocab_size,)``: the tokens the training responses say twice in a row at least
    :data:`STUTTER_MIN_COUNT` times and in at least :data:`STUTTER_MIN_RATE` of their occurrences (none without
    the counts)."""
    may_repeat = torch.zeros(vocab_size, dtype=torch.bool)
    if token_freq is None or token_repeats is None:
        return may_repeat
    freq = torch.as_tensor(list(token_freq), dtype=torch.float64)
    repeats = torch.as_tensor(list(token_repeats), dtype=torch.float64)
    ok = repeats.ge(STUTTER_MIN_COUNT) & repeats.ge(STUTTER_MIN_RATE * freq)
    may_repeat[:len(ok)] = ok[:vocab_size]
    return may_repeat


def stutter_ends(generated: Tensor, may_repeat: Tensor) -> Tensor:
    """The tokens that would repeat the last one of their row if generated next.

    Args:
        generated: ``(batch, t)`` tokens generated so far (without START).
        may_repeat: BoolTensor ``(V,)`` of the tokens allowed to follow themselves (:func:`repeatable_tokens`).

    Returns:
        BoolTensor ``(batch, V)``: in row b, True at ``generated[b, -1]`` unless that token may repeat.
    """
    banned = torch.zeros(generated.shape[0], may_repeat.shape[0], dtype=torch.bool, device=generated.device)
    if generated.shape[1] == 0:
        return banned
    last = generated[:, -1:]
    return banned.scatter_(1, last, ~may_repeat[last])


def target_costs(logits: Tensor, target: Tensor, alpha: Tensor, end_token_idx: Optional[int] = None) -> Tensor:
    """Each target's cost in the instance-weighted generation loss (Eq. 11); the loss is their mean over the real
    (non-pad) targets.

    The paper's Eq. 11 writes ``−log(α · P)``, whose gradient ignores α; we weight the negative
    log-likelihood, which is what the reference computes and what makes α matter. Its optimum is
    ``P(w) ∝ α(w) · q(w)`` (q: the data's next-token distribution): frequent words are said less, as the
    paper intends, but END, scored like any target, is then inflated by ``α(END) / α(w)`` against each word
    it competes with. With ``end_token_idx`` the stop decision is kept out of the weighting:
    ``P(w) = P(continue) · P(w | continue)`` and

    - an END target costs ``−log P(END)``;
    - a word target costs ``−log P(continue) + α(w) · (−log P(w | continue))``,

    whose optimum is ``P(END) = q(END)`` (responses end where the data's do) and
    ``P(w | continue) ∝ α(w) · q(w | continue)``. With α = 1 both forms are the plain likelihood.

    Args:
        logits: ``(..., vocab_size)``, e.g. ``(n_targets, vocab_size)``.
        target: ``(...)`` token ids.
        alpha: ``(vocab_size,)`` weights.
        end_token_idx: the END id, to keep the stop decision unweighted; None weighs END like a word.

    Returns:
        float32 ``(...)``, one cost per target.
    """
    log_prob = F.log_softmax(logits.float(), dim=-1)
    target_log_prob = log_prob.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    weight = alpha[target]
    if end_token_idx is None:
        return -weight * target_log_prob
    # log P(continue) summed over the other tokens (two slices, no copy): 1 - P(END) would round to 0 where END is
    # confident, and its log to -inf
    log_continue = torch.logaddexp(torch.logsumexp(log_prob[..., :end_token_idx], dim=-1),
                                   torch.logsumexp(log_prob[..., end_token_idx + 1:], dim=-1))
    word_loss = -log_continue - weight * (target_log_prob - log_continue)
    return torch.where(target.eq(end_token_idx), -target_log_prob, word_loss)


class DecoderMemory(NamedTuple):
    """Everything the decoder attends to, computed once per batch.

    Attributes:
        history, history_pad_mask: F ``(batch, seq_len, token_dim)`` and its pad mask, or None (w/o CH).
        kg, kg_pad_mask: context-entity node representations projected to ``token_dim``
            ``(batch, n_context_entities, token_dim)`` and pad mask, or None (w/o SD).
        review, review_pad_mask: the sample's review sentence representations E, projected,
            ``(batch, n_max, token_dim)`` and pad mask, or None (w/o UD).
        copy_user: projected user representations feeding the copy mechanism
            ``(batch, n_user_views * token_dim)`` (KG e_G and/or review e_R; width 0 if both are disabled).
    """

    history: Optional[Tensor]
    history_pad_mask: Optional[Tensor]
    kg: Optional[Tensor]
    kg_pad_mask: Optional[Tensor]
    review: Optional[Tensor]
    review_pad_mask: Optional[Tensor]
    copy_user: Tensor

    def get(self, name: str) -> tuple[Optional[Tensor], Optional[Tensor]]:
        return getattr(self, name), getattr(self, f"{name}_pad_mask")

    def batch_size(self) -> int:
        return self.copy_user.shape[0]


class DecoderLayer(nn.Module):
    """Decoder layer of Eq. 10, post-norm residual blocks in the paper's chain: causal self-attention ->
    conversation history -> knowledge graph -> reviews -> FFN. Blocks of disabled views are not built."""

    def __init__(self, config: C2CRSConfig) -> None:
        super().__init__()
        dim = config.token_dim
        enabled = {"history": config.use_history, "kg": config.use_kg, "review": config.use_review}
        self.memories = [name for name in MEMORIES if enabled[name]]
        self.self_attention = MultiHeadAttention(dim, config.n_heads, config.attention_dropout)
        self.self_norm = nn.LayerNorm(dim)
        self.cross_attention = nn.ModuleDict(
            {name: MultiHeadAttention(dim, config.n_heads, config.attention_dropout) for name in self.memories}
        )
        self.cross_norm = nn.ModuleDict({name: nn.LayerNorm(dim) for name in self.memories})
        self.ffn = FeedForward(dim, config.ffn_size, config.relu_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, memory: DecoderMemory, cache: Optional[LayerCache] = None) -> Tensor:
        """``x``: ``(batch, new_len, token_dim)``; with ``cache`` the earlier positions' keys/values are reused."""
        self_cache = None if cache is None else cache.setdefault("self", {})
        attention = self.self_attention(x, x, causal=True, cache=self_cache)
        x = self.self_norm(x + self.dropout(attention))
        for name in self.memories:
            states, pad_mask = memory.get(name)
            attention = self.cross_attention[name](
                x,
                states,
                key_pad_mask=pad_mask,
                cache=None if cache is None else cache.setdefault(name, {}),
                static_memory=True,
            )
            x = self.cross_norm[name](x + self.dropout(attention))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


class C2CRSDecoder(nn.Module):
    """Transformer decoder with KG and review memories, tied output projection and copy mechanism.

    Logits follow KGSF (CRSLab's ``KGSFModel._decode_forced_with_kg``)::

        gen  = h_t · Embᵀ                                   (output projection tied to the token embedding)
        copy = W_o · W_c [h_t; W_g e_G; W_r e_R]  ⊙ copy_mask   (zero outside the copyable tokens)
        logits = gen + copy

    Args:
        config: model configuration (ablation flags decide which memories and user views exist).
        token_embedding: the shared token embedding ``(vocab_size, token_dim)``.
        copy_mask: BoolTensor ``(vocab_size,)`` of the tokens the copy term may boost (KG / review words);
            None means every token is copyable.
    """

    def __init__(self, config: C2CRSConfig, token_embedding: nn.Embedding, copy_mask: Optional[Tensor]) -> None:
        super().__init__()
        dim = config.token_dim
        self.start_token_idx = config.start_token_idx
        self.end_token_idx = config.end_token_idx
        self.pad_token_idx = config.pad_token_idx
        self.use_history = config.use_history
        self.token_embedding = token_embedding
        self.embed = TokenPositionEmbedding(
            token_embedding,
            config.n_positions,
            config.dropout,
            config.embeddings_scale,
            config.learn_positional_embeddings,
        )
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_layers))
        self.kg_memory_proj = nn.Linear(config.kg_dim, dim) if config.use_kg else None
        self.review_memory_proj = nn.Linear(dim, dim) if config.use_review else None
        self.kg_user_proj = nn.Linear(config.kg_dim, dim) if config.use_kg else None
        self.review_user_proj = nn.Linear(dim, dim) if config.use_review else None
        n_user_views = int(config.use_kg) + int(config.use_review)
        self.copy_fusion = nn.Linear(dim * (1 + n_user_views), dim)
        self.copy_output = nn.Linear(dim, config.vocab_size)
        if copy_mask is None:
            copy_mask = torch.ones(config.vocab_size, dtype=torch.bool)
        copy_mask = torch.as_tensor(copy_mask, dtype=torch.bool)
        if copy_mask.shape != (config.vocab_size,):
            raise ValueError(f"copy_mask must have shape ({config.vocab_size},), got {tuple(copy_mask.shape)}")
        self.register_buffer("copy_mask", copy_mask, persistent=False)

    def build_memory(
        self,
        batch_size: int,
        history: Optional[tuple[Tensor, Tensor]],
        kg: Optional[tuple[Tensor, Tensor, Tensor]],
        review: Optional[tuple[Tensor, Tensor, Tensor]],
    ) -> DecoderMemory:
        """Project the encoders' outputs into decoder memories (once per batch).

        Args:
            batch_size: ``B``.
            history: (F ``(B, seq_len, token_dim)``, pad mask ``(B, seq_len)``) or None.
            kg: (context-entity states ``(B, n_e, kg_dim)``, pad mask ``(B, n_e)``, e_G ``(B, kg_dim)``) or None.
            review: (packed E ``(B, n_r, token_dim)``, pad mask ``(B, n_r)``, e_R ``(B, token_dim)``) or None.

        Each argument must be given exactly when its view is enabled in the config.
        """
        user: List[Tensor] = []
        kg_states = kg_pad = review_states = review_pad = None
        if (kg is not None) != (self.kg_memory_proj is not None):
            raise ValueError("the KG memory must be given exactly when use_kg is on")
        if (review is not None) != (self.review_memory_proj is not None):
            raise ValueError("the review memory must be given exactly when use_review is on")
        if (history is not None) != self.use_history:
            raise ValueError("the history memory must be given exactly when use_history is on")
        if kg is not None:
            kg_states, kg_pad, kg_user = kg
            kg_states = self.kg_memory_proj(kg_states)
            user.append(self.kg_user_proj(kg_user))
        if review is not None:
            review_states, review_pad, review_user = review
            review_states = self.review_memory_proj(review_states)
            user.append(self.review_user_proj(review_user))
        device = self.copy_output.weight.device
        copy_user = torch.cat(user, dim=-1) if user else torch.zeros(batch_size, 0, device=device)
        history_states, history_pad = history if history is not None else (None, None)
        return DecoderMemory(history_states, history_pad, kg_states, kg_pad, review_states, review_pad, copy_user)

    def forward(
        self,
        inputs: Tensor,
        memory: DecoderMemory,
        cache: Optional[List[LayerCache]] = None,
        position_offset: int = 0,
    ) -> Tensor:
        """Decoder states R^L of Eq. 10.

        Args:
            inputs: ``(batch, new_len)`` token ids (right-padded responses; padding only follows END).
            memory: from :meth:`build_memory`.
            cache: one dict per layer, filled in place, for incremental decoding; then ``inputs`` holds only
                the new tokens and ``position_offset`` the number already decoded.
            position_offset: position of ``inputs[:, 0]``.

        Returns:
            ``(batch, new_len, token_dim)``.
        """
        if position_offset + inputs.shape[1] > self.embed.n_positions:
            raise ValueError(f"decoding past n_positions={self.embed.n_positions}; raise n_positions")
        positions = torch.arange(inputs.shape[1], device=inputs.device) + position_offset
        x = self.embed(inputs, positions.unsqueeze(0).expand_as(inputs))
        for index, layer in enumerate(self.layers):
            x = layer(x, memory, None if cache is None else cache[index])
        return x

    def output_logits(self, hidden: Tensor, memory: DecoderMemory, rows: Optional[Tensor] = None) -> Tensor:
        """Generation + copy logits ``(..., vocab_size)`` from decoder states: ``hidden`` ``(batch, seq_len, dim)``,
        or, with ``rows``, packed states ``(n, dim)`` whose batch rows are ``rows`` ``(n,)``.

        In training ``h Embᵀ + (W_o c + b_o) ⊙ mask`` is computed as one product
        ``[h; c] [Emb; W_o ⊙ mask]ᵀ + b_o ⊙ mask``: equal up to float rounding, and one vocabulary-sized tensor
        instead of four alive at once (the largest activations of the conversation stage). Without autograd
        (decoding one token at a time) the two products are cheaper than concatenating the weights each step.
        """
        if rows is None:
            user = memory.copy_user.unsqueeze(1).expand(-1, hidden.shape[1], -1)
        else:
            user = memory.copy_user[rows]
        copy_latent = self.copy_fusion(torch.cat([hidden, user], dim=-1))
        mask = self.copy_mask.to(hidden.dtype)
        if not torch.is_grad_enabled():
            copy_logits = self.copy_output(copy_latent).mul_(mask)
            return copy_logits.add_(F.linear(hidden, self.token_embedding.weight))
        weight = torch.cat([self.token_embedding.weight, self.copy_output.weight * mask.unsqueeze(1)], dim=1)
        return F.linear(torch.cat([hidden, copy_latent], dim=-1), weight, self.copy_output.bias * mask)

    def forced_costs(self, inputs: Tensor, target: Tensor, memory: DecoderMemory, alpha: Tensor,
                     end_token_idx: Optional[int] = None, chunk: Optional[int] = None
                     ) -> Tuple[Tensor, Tensor, Tensor]:
        """Teacher forcing (see :func:`teacher_forcing`), scored at the real (non-pad) targets only.

        The two vocabulary-sized products and the softmax dominate a conversation step, and about two thirds of
        a batch's target positions are padding (responses of ~9 tokens padded to the longest, up to 30): they
        are skipped, which leaves every real position's logits, the loss and its gradients unchanged. With
        ``chunk`` (in training) the outputs are computed ``chunk`` targets at a time under gradient checkpointing:
        only one chunk's vocabulary-sized tensors are alive, and backward recomputes them (the same gradients).

        Args:
            inputs: ``(batch, len)`` decoder inputs.
            target: ``(batch, len)`` the token each position must predict, padded with the pad id.
            memory: from :meth:`build_memory`.
            alpha, end_token_idx: as :func:`weighted_nll` takes them.
            chunk: targets per checkpointed chunk; None computes every target's outputs at once.

        Returns:
            The costs (:func:`target_costs`) ``(n_real,)`` and argmax predictions ``(n_real,)`` of the targets
            ``target[real]``, and the mask ``real`` ``(batch, len)``.
        """
        real = target.ne(self.pad_token_idx)
        rows = real.nonzero()[:, 0]
        hidden, targets = self(inputs, memory)[real], target[real]

        def costs(states: Tensor, state_rows: Tensor, state_targets: Tensor) -> Tuple[Tensor, Tensor]:
            logits = self.output_logits(states, memory, state_rows)
            return target_costs(logits, state_targets, alpha, end_token_idx), logits.argmax(dim=-1)

        if not chunk or not torch.is_grad_enabled() or targets.numel() <= chunk:
            cost, best = costs(hidden, rows, targets)
            return cost, best, real
        parts = [checkpoint(costs, hidden[start:start + chunk], rows[start:start + chunk],
                            targets[start:start + chunk], use_reentrant=False)
                 for start in range(0, targets.numel(), chunk)]
        return torch.cat([cost for cost, _ in parts]), torch.cat([best for _, best in parts]), real

    @torch.no_grad()
    def greedy(self, memory: DecoderMemory, max_len: int, use_cache: bool = True, block_ngram: int = 0,
               stop_first: bool = False, may_repeat: Optional[Tensor] = None) -> Tensor:
        """Greedy decoding until every row has emitted END or ``max_len`` tokens were generated.

        Args:
            memory: from :meth:`build_memory`.
            max_len: most tokens to generate.
            use_cache: decode incrementally, caching self-attention keys/values per layer and the memories'
                keys/values; False recomputes the whole prefix every step (same result, slower).
            block_ngram: n > 0: never pick a word that repeats an n-gram of the row (see
                :func:`repeated_ngram_ends`); 0: plain greedy decoding.
            stop_first: decide the stop first: END exactly when ``P(END) > P(continue)`` (its logit above the
                log-sum-exp of all others), else the most probable word. False: END competes with every word.
            may_repeat: BoolTensor ``(V,)``: never pick the row's last word again unless it is True here (see
                :func:`stutter_ends`); None: no such rule.

        Returns:
            ``(batch, ≤ max_len)`` generated ids without the leading START; after a row's END the rest of the
            row is padding.
        """
        batch_size = memory.batch_size()
        device = self.copy_output.weight.device
        tokens = torch.full((batch_size, 1), self.start_token_idx, dtype=torch.long, device=device)
        finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
        end_index = torch.tensor([self.end_token_idx], device=device)
        cache: Optional[List[LayerCache]] = [{} for _ in self.layers] if use_cache else None
        for step in range(max_len):
            if cache is not None:
                hidden = self(tokens[:, -1:], memory, cache, position_offset=step)
            else:
                hidden = self(tokens, memory)
            logits = self.output_logits(hidden[:, -1:], memory).squeeze(1)
            if stop_first:
                # the stop decision on the model's own distribution, then the word among the rest
                words = logits.index_fill(1, end_index, float("-inf"))
                stop = logits[:, self.end_token_idx] > torch.logsumexp(words, dim=-1)
                logits = words
            if block_ngram:
                logits = logits.masked_fill(repeated_ngram_ends(tokens[:, 1:], block_ngram, logits.shape[-1]),
                                            float("-inf"))
            if may_repeat is not None:
                logits = logits.masked_fill(stutter_ends(tokens[:, 1:], may_repeat), float("-inf"))
            next_token = logits.argmax(dim=-1)
            if stop_first:
                next_token = next_token.masked_fill(stop, self.end_token_idx)
            next_token = next_token.masked_fill(finished, self.pad_token_idx)
            tokens = torch.cat([tokens, next_token.unsqueeze(1)], dim=1)
            finished = finished | next_token.eq(self.end_token_idx)
            if bool(finished.all()):
                break
        return tokens[:, 1:]

