"""FastDropout (``fast_dropout``): nn.Dropout's semantics with 16-bit random masks."""
import pytest
import torch
from torch import nn

import tiny_c2crs
from crslab_c2crs.model.c2crs.dropout import FastDropout, use_fast_dropout


def test_drops_at_rate_p_and_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = FastDropout(0.1).train()(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.003


def test_every_lane_of_the_random_bits_is_used_alike():
    # one draw serves 4 elements: a biased lane would drop every 4th element at another rate
    torch.manual_seed(0)
    y = FastDropout(0.5).train()(torch.ones(4 * 250_000))
    rates = (y.view(-1, 4) == 0).float().mean(dim=0)
    assert torch.all((rates - 0.5).abs() < 0.005), rates


def test_seeded_identity_in_eval_and_at_p_zero():
    x = torch.randn(3, 7, 5)
    masks = []
    for _ in range(2):
        torch.manual_seed(3)
        masks.append(FastDropout(0.3).train()(x))
    torch.testing.assert_close(masks[0], masks[1], rtol=0, atol=0)
    assert FastDropout(0.3).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        FastDropout(1.0)


def test_gradient_flows_through_the_kept_elements_only():
    torch.manual_seed(1)
    x = torch.randn(50, 40, requires_grad=True)
    y = FastDropout(0.2).train()(x)
    y.sum().backward()
    kept = y != 0
    torch.testing.assert_close(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.8))
    assert torch.all(x.grad[~kept] == 0)


def test_the_model_option_replaces_every_dropout_and_checkpointing_replays_its_masks():
    model = tiny_c2crs.model(dropout=0.3, relu_dropout=0.3, fast_dropout=True)
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert sum(isinstance(m, FastDropout) for m in model.modules()) > 10
    results = []
    for checkpointing in (False, True):
        model = tiny_c2crs.model(dropout=0.3, relu_dropout=0.3, fast_dropout=True,
                                 gradient_checkpointing=checkpointing).train()
        torch.manual_seed(7)
        loss, _ = model.pretrain(tiny_c2crs.batch(), "fine")
        loss.backward()
        results.append((loss.detach(), model.history_encoder.transformer.layers[0].ffn.lin1.weight.grad.clone()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-6, atol=1e-7)


def test_use_fast_dropout_keeps_p():
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.25), nn.Sequential(nn.Dropout(0.5)))
    use_fast_dropout(module)
    assert [m.p for m in module.modules() if isinstance(m, FastDropout)] == [0.25, 0.5]
