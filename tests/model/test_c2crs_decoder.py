"""Decoder: copy mechanism, instance-weighted loss, teacher forcing and incremental greedy decoding."""
import pytest
import torch
import torch.nn.functional as F

import tiny_c2crs as tiny
from crslab_c2crs.model.c2crs.decoder import (
    repeatable_tokens,
    repeated_ngram_ends,
    stutter_ends,
    target_costs,
    token_weights,
)


def weighted_nll(logits, target, alpha, pad, end_token_idx=None):
    """The loss of Eq. 11: the targets' costs, averaged over the non-pad targets (as the model averages them)."""
    real = target.ne(pad).float()
    return (target_costs(logits, target, alpha, end_token_idx) * real).sum() / real.sum()


def _memory(model, batch):
    enc = model._encode(batch, True, True, True)
    return model._decoder_memory(enc, batch["context"].shape[0])


def test_token_weights_follow_eq_12():
    alpha = token_weights([0, 4, 5, 10, 100], vocab_size=6, beta=5, gamma=0.1)
    # f < beta -> 1; f >= beta -> max(gamma, beta / f); ids missing from the list count 0
    torch.testing.assert_close(alpha, torch.tensor([1.0, 1.0, 1.0, 0.5, 0.1, 1.0]))
    assert torch.equal(token_weights(None, 3, 5, 0.1), torch.ones(3))
    # special tokens are not words: weight 1 however often they were counted
    assert token_weights([100, 4, 100, 10, 100], vocab_size=5, beta=5, gamma=0.1, special_ids=(0, 2)).tolist() == \
        pytest.approx([1.0, 1.0, 1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="token_freq"):
        token_weights([1, 2, 3], vocab_size=2, beta=5, gamma=0.1)


def test_weighted_nll_with_unit_weights_is_cross_entropy_ignoring_pad():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7) * 4
    target = torch.tensor([[4, 5, 2, 0, 0], [3, 2, 0, 0, 0], [6, 6, 6, 6, 2]])
    expected = F.cross_entropy(logits.reshape(-1, 7), target.reshape(-1), ignore_index=0)
    torch.testing.assert_close(weighted_nll(logits, target, torch.ones(7), 0), expected)


def test_weighted_nll_weights_each_target_and_normalises_by_real_tokens():
    logits = torch.tensor([[[1e4, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]])  # huge logit: stable
    target = torch.tensor([[1, 2, 0]])
    alpha = torch.tensor([5.0, 0.5, 2.0])
    nll = -torch.log_softmax(logits[0], dim=-1)
    expected = (0.5 * nll[0, 1] + 2.0 * nll[1, 2]) / 2
    torch.testing.assert_close(weighted_nll(logits, target, alpha, 0), expected)


def test_unweighted_stop_with_unit_weights_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7) * 4
    target = torch.tensor([[4, 5, 2, 0, 0], [3, 2, 0, 0, 0], [6, 6, 6, 6, 2]])
    expected = F.cross_entropy(logits.reshape(-1, 7), target.reshape(-1), ignore_index=0)
    torch.testing.assert_close(weighted_nll(logits, target, torch.ones(7), 0, end_token_idx=2), expected)


def test_unweighted_stop_on_hand_made_targets():
    """An END target costs -log P(END); a word -log P(continue) + alpha(w) (-log P(w | continue))."""
    logits = torch.tensor([[0.0, 0.0, 1.0, 2.0, -1.0], [0.0, 0.0, 1.0, 2.0, -1.0]])
    target = torch.tensor([2, 3])
    alpha = torch.tensor([1.0, 1.0, 1.0, 0.25, 1.0])
    prob = torch.softmax(logits[0], dim=-1)
    cont = 1 - prob[2]
    expected = (-torch.log(prob[2]) + (-torch.log(cont) - 0.25 * torch.log(prob[3] / cont))) / 2
    torch.testing.assert_close(weighted_nll(logits, target, alpha, 0, end_token_idx=2), expected)


def test_unweighted_stop_is_finite_where_end_is_certain():
    logits = torch.zeros(2, 6)
    logits[:, 2] = 60.0  # P(continue) rounds to 0 in float32: the loss must not be inf or nan
    logits.requires_grad_()
    loss = weighted_nll(logits, torch.tensor([2, 4]), torch.full((6,), 0.5), 0, end_token_idx=2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and loss.item() > 25


@pytest.mark.parametrize("end_token_idx, expected_end", [(None, 0.5 / (0.5 + 0.3 * 0.2 + 0.2)), (2, 0.5)])
def test_loss_optimum_keeps_the_stop_probability_of_the_data_only_when_stop_is_unweighted(end_token_idx,
                                                                                          expected_end):
    """Free logits fitted to targets END 50%, word 3 30% (alpha 0.2), word 4 20%: the weighted NLL's optimum is
    P proportional to alpha q, which inflates END; the unweighted stop keeps P(END) = q(END) and weights only
    the words, P(w | continue) proportional to alpha(w) q(w | continue)."""
    alpha = torch.tensor([1.0, 1.0, 1.0, 0.2, 1.0, 1.0])
    target = torch.tensor([2] * 5 + [3] * 3 + [4] * 2)
    logits = torch.zeros(6, requires_grad=True)
    optimizer = torch.optim.LBFGS([logits], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = weighted_nll(logits.expand(10, 6), target, alpha, 0, end_token_idx)
        loss.backward()
        return loss

    optimizer.step(closure)
    prob = torch.softmax(logits.detach(), dim=-1)
    assert prob[2].item() == pytest.approx(expected_end, abs=2e-3)
    assert (prob[3] / prob[4]).item() == pytest.approx(0.3 * 0.2 / 0.2, abs=5e-3)


def test_zero_copy_mask_gives_the_tied_generation_logits():
    model = tiny.model(copy_mask=torch.zeros(tiny.VOCAB_SIZE, dtype=torch.bool)).eval()
    batch = tiny.batch()
    memory = _memory(model, batch)
    hidden = model.decoder(batch["response"][:, :-1], memory)
    logits = model.decoder.output_logits(hidden, memory)
    torch.testing.assert_close(logits, hidden @ model.token_embedding.weight.t())


def test_copy_term_is_confined_to_the_mask_and_driven_by_the_user_views():
    mask = torch.zeros(tiny.VOCAB_SIZE, dtype=torch.bool)
    mask[[10, 20, 30]] = True
    model = tiny.model(copy_mask=mask).eval()
    batch = tiny.batch()
    memory = _memory(model, batch)
    hidden = model.decoder(batch["response"][:, :-1], memory)
    copy = model.decoder.output_logits(hidden, memory) - hidden @ model.token_embedding.weight.t()
    assert torch.all(copy[..., ~mask].abs() < 1e-6) and torch.all(copy[..., mask].abs() > 0)
    # the copy term reads [h_t; W_g e_G; W_r e_R]: changing the user views moves only copyable logits
    changed = memory._replace(copy_user=memory.copy_user + 1.0)
    delta = model.decoder.output_logits(hidden, changed) - model.decoder.output_logits(hidden, memory)
    assert torch.all(delta[..., ~mask] == 0) and torch.all(delta[..., mask].abs() > 0)
    assert memory.copy_user.shape == (4, 2 * 16)


def test_forced_decoding_predicts_response_without_start():
    model = tiny.model().eval()
    batch = tiny.batch()
    loss, preds = model.converse(batch, "train")
    assert preds.shape == (4, batch["response"].shape[1] - 1)
    memory = _memory(model, batch)
    hidden = model.decoder(batch["response"][:, :-1], memory)
    logits = model.decoder.output_logits(hidden, memory)  # every position, padding included
    targets = batch["response"][:, 1:]
    torch.testing.assert_close(loss, weighted_nll(logits, targets, model.token_alpha, 0, tiny.END))
    real = targets.ne(0)
    assert not real.all(), "the tiny batch must pad some responses for this test to mean anything"
    assert torch.equal(preds[real], logits.argmax(-1)[real]) and torch.all(preds[~real] == 0)
    # validation measures the plain likelihood: the instance weights are a training device
    valid_loss, _ = model.converse(batch, "valid")
    torch.testing.assert_close(valid_loss, weighted_nll(logits, targets, torch.ones_like(model.token_alpha), 0))


@pytest.mark.parametrize("chunk", [None, 3])
def test_forced_costs_at_real_targets_equal_the_full_loss_and_so_do_their_gradients(chunk):
    """Teacher forcing computes the output layer at the non-pad targets only, and with ``chunk`` a few targets at a
    time under checkpointing: the same costs and predictions there, and the same loss gradients as over every
    position with pad targets ignored."""
    model = tiny.model().eval()
    batch = tiny.batch()
    inputs, targets = batch["response"][:, :-1], batch["response"][:, 1:]
    # the encoders' outputs as fixed inputs: the gradients compared are the decoder's
    encoded = _memory(model, batch)
    memory = type(encoded)(*(None if t is None else t.detach() for t in encoded))

    def gradients(loss_of):
        model.zero_grad()
        loss_of(memory).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    def packed(memory):
        costs, _, real = model.decoder.forced_costs(inputs, targets, memory, model.token_alpha, tiny.END, chunk)
        return costs.sum() / real.sum()

    def full(memory):
        logits = model.decoder.output_logits(model.decoder(inputs, memory), memory)
        return weighted_nll(logits, targets, model.token_alpha, 0, tiny.END)

    costs, best, real = model.decoder.forced_costs(inputs, targets, memory, model.token_alpha, tiny.END, chunk)
    assert torch.equal(real, targets.ne(0)) and costs.shape == best.shape == (int(real.sum()),)
    assert chunk is None or costs.shape[0] > chunk  # the chunked case really splits
    logits = model.decoder.output_logits(model.decoder(inputs, memory), memory)[real]
    torch.testing.assert_close(costs, target_costs(logits, targets[real], model.token_alpha, tiny.END))
    assert torch.equal(best, logits.argmax(dim=-1))
    expected, got = gradients(full), gradients(packed)
    assert expected.keys() == got.keys() and "decoder.copy_output.weight" in got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)


def test_incremental_states_equal_full_recomputation():
    model = tiny.model().eval()
    batch = tiny.batch()
    memory = _memory(model, batch)
    inputs = batch["response"]
    full = model.decoder(inputs, memory)
    cache = [{} for _ in model.decoder.layers]
    steps = [model.decoder(inputs[:, t : t + 1], memory, cache, position_offset=t) for t in range(inputs.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)


def test_greedy_with_cache_equals_greedy_without_and_stops_at_end():
    torch.manual_seed(1)
    model = tiny.model(seed=3, response_truncate=8).eval()
    with torch.no_grad():
        model.decoder.copy_output.weight.mul_(20.0)  # livelier, varied outputs
    batch = tiny.batch()
    memory = _memory(model, batch)
    cached = model.decoder.greedy(memory, 8, use_cache=True)
    full = model.decoder.greedy(memory, 8, use_cache=False)
    assert torch.equal(cached, full)
    assert cached.shape[0] == 4 and cached.shape[1] <= 8

    # force END at the second step for every row: generation stops there, no START is returned
    with torch.no_grad():
        model.decoder.copy_output.bias.zero_()
        model.decoder.copy_output.bias[tiny.END] = 1e4
    assert torch.equal(model.decoder.greedy(memory, 8), torch.full((4, 1), tiny.END))


def _scripted_greedy(logits_of_step):
    """Greedy decoding of a tiny model whose output logits at step t are ``logits_of_step(t, batch_size)``
    ``(batch, 1, vocab)``: a function of the greedy keyword arguments, counting steps from 0 on every call."""
    model = tiny.model().eval()
    memory = _memory(model, tiny.batch())
    steps = []

    def scripted_logits(hidden, memory):
        steps.append(len(steps))
        return logits_of_step(steps[-1], hidden.shape[0])

    model.decoder.output_logits = scripted_logits

    def greedy(max_len, **kwargs):
        steps.clear()
        return model.decoder.greedy(memory, max_len, **kwargs).tolist()

    return greedy


def test_rows_that_finished_are_padded_and_decoding_runs_to_max_len_otherwise():
    def logits_of_step(step, batch_size):
        """Row 0 ends at step 0, row 1 at step 2, rows 2-3 never end; token 7 otherwise."""
        logits = torch.zeros(batch_size, 1, tiny.VOCAB_SIZE)
        logits[:, :, 7] = 1.0
        if step == 0:
            logits[0, :, tiny.END] = 2.0
        if step == 2:
            logits[:2, :, tiny.END] = 2.0
        return logits

    assert _scripted_greedy(logits_of_step)(5) == [
        [tiny.END, 0, 0, 0, 0],
        [7, 7, tiny.END, 0, 0],
        [7, 7, 7, 7, 7],
        [7, 7, 7, 7, 7],
    ]


def test_stop_first_ends_only_when_end_outweighs_all_words_together():
    """END at 1.5 / 3.5 beats each of two words at about 1 / 3.5 (plain greedy stops) but not both (stop_first goes
    on with the best word); at 2.5 / 4.5 both rules stop."""
    def logits_of_step(step, batch_size):
        logits = torch.full((batch_size, 1, tiny.VOCAB_SIZE), -1e4)
        logits[:, :, 7], logits[:, :, 8] = 0.01, 0.0  # two words of about 1 / 3.5 each
        logits[:, :, tiny.END] = torch.tensor(1.5 if step < 2 else 2.5).log()
        return logits

    greedy = _scripted_greedy(logits_of_step)
    assert greedy(5) == [[tiny.END]] * 4
    assert greedy(5, stop_first=True) == [[7, 7, tiny.END]] * 4
    # n-gram blocking bans words, never the stop decision: the second word is the other one
    assert greedy(5, stop_first=True, block_ngram=1) == [[7, 8, tiny.END]] * 4


def test_the_model_decodes_with_its_configured_stop_rule():
    batch = tiny.batch()
    for rule in ("stop_first", "argmax"):
        model = tiny.model(seed=3, stop_rule=rule).eval()
        with torch.no_grad():
            model.decoder.copy_output.weight.mul_(20.0)
        expected = model.decoder.greedy(_memory(model, batch), model.config.response_truncate,
                                        stop_first=rule == "stop_first")
        assert torch.equal(model.converse(batch, "test")[1], expected)


def test_fused_training_logits_equal_the_separate_products():
    """Training computes gen + masked copy logits as one product; decoding as two: the same numbers."""
    mask = torch.zeros(tiny.VOCAB_SIZE, dtype=torch.bool)
    mask[10:30] = True
    model = tiny.model(copy_mask=mask).eval()
    batch = tiny.batch()
    memory = _memory(model, batch)
    hidden = model.decoder(batch["response"][:, :-1], memory)
    fused = model.decoder.output_logits(hidden, memory)
    with torch.no_grad():
        separate = model.decoder.output_logits(hidden, memory)
    torch.testing.assert_close(fused, separate)
    assert fused.requires_grad


def test_repeated_ngram_ends_on_hand_made_rows():
    generated = torch.tensor([[5, 6, 5], [7, 7, 8]])

    def banned(n):
        return [sorted(torch.nonzero(row).flatten().tolist()) for row in repeated_ngram_ends(generated, n, 10)]

    assert banned(1) == [[5, 6], [7, 8]]  # any token already generated
    assert banned(2) == [[6], []]  # row 0 ends in 5 and "5 6" occurred; row 1 ends in 8, never followed yet
    assert banned(3) == [[], []]
    assert banned(4) == [[], []]  # shorter than n: nothing to repeat


def test_greedy_ngram_blocking_never_repeats_an_ngram_and_is_off_by_default():
    model = tiny.model(response_truncate=12).eval()
    with torch.no_grad():
        model.decoder.copy_output.bias.zero_()
        model.decoder.copy_output.bias[7] = 50.0  # token 7 dominates every step
        model.decoder.copy_output.bias[tiny.END] = -50.0
    memory = _memory(model, tiny.batch())
    assert torch.all(model.decoder.greedy(memory, 12) == 7)  # plain greedy: the degenerate repetition
    for n in (1, 2, 3):
        for row in model.decoder.greedy(memory, 12, block_ngram=n).tolist():
            ngrams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1)]
            assert len(ngrams) == len(set(ngrams)), (n, row)
    # the cached and the recomputing paths block the same tokens
    assert torch.equal(model.decoder.greedy(memory, 12, block_ngram=2),
                       model.decoder.greedy(memory, 12, use_cache=False, block_ngram=2))


def test_repeatable_tokens_need_enough_repeats_in_count_and_share():
    freq, repeats = [0, 0, 0, 0, 1000, 100, 600], [0, 0, 0, 0, 4, 3, 2]
    # 4: 4 repeats in 1,000 (< 0.5%); 5: 3 in 100; 6: 2 (< 3); the vocabulary may be longer than the counts
    assert repeatable_tokens(freq, repeats, 8).tolist() == [False] * 5 + [True, False, False]
    assert not repeatable_tokens(None, None, 8).any()


def test_stutter_ends_on_hand_made_rows():
    may_repeat = torch.zeros(10, dtype=torch.bool)
    may_repeat[9] = True
    banned = stutter_ends(torch.tensor([[5, 6, 6], [7, 9, 9], [4, 4, 3]]), may_repeat)
    assert [torch.nonzero(row).flatten().tolist() for row in banned] == [[6], [], [3]]
    assert not stutter_ends(torch.zeros(2, 0, dtype=torch.long), may_repeat).any()


def test_greedy_never_says_a_word_twice_in_a_row_unless_it_may_repeat():
    def logits_of_step(step, batch_size):
        """Row 0 prefers token 7 then 8, row 1 token 9 then 8, every step; END never."""
        logits = torch.full((batch_size, 1, tiny.VOCAB_SIZE), -1e4)
        logits[:, :, 8] = 1.0
        logits[0, :, 7] = logits[1:, :, 9] = 2.0
        return logits

    greedy = _scripted_greedy(logits_of_step)
    assert greedy(4)[:2] == [[7, 7, 7, 7], [9, 9, 9, 9]]
    model = tiny.model()
    assert model.may_repeat.nonzero().flatten().tolist() == [9]
    assert greedy(4, may_repeat=model.may_repeat)[:2] == [[7, 8, 7, 8], [9, 9, 9, 9]]


def test_block_stutter_applies_in_the_chat_by_default_and_as_configured():
    batch = tiny.batch()
    for rule, in_test, in_chat in (("chat", False, True), ("always", True, True), ("never", False, False)):
        model = tiny.model(seed=3, block_stutter=rule, response_truncate=12).eval()
        with torch.no_grad():
            model.decoder.copy_output.bias[7] = 50.0  # token 7 dominates every step
            model.decoder.copy_output.bias[tiny.END] = -50.0
        memory = _memory(model, batch)
        plain = model.decoder.greedy(memory, 12, stop_first=True)
        blocked = model.decoder.greedy(memory, 12, stop_first=True, may_repeat=model.may_repeat)
        assert not torch.equal(plain, blocked)
        assert torch.equal(model.converse(batch, "test")[1], blocked if in_test else plain), rule
        assert torch.equal(model.converse(batch, "test", chatting=True)[1], blocked if in_chat else plain), rule
