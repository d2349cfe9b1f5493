"""Speed-ups that must not change results (distinct review sentences encoded once, frozen encoders, gradient
checkpointing) and one that changes them by rounding only (bf16 mixed precision)."""
import torch

import tiny_c2crs


def test_duplicate_review_sentences_are_encoded_once_with_equal_results():
    model = tiny_c2crs.model().eval()
    batch = tiny_c2crs.batch()
    review, rows = batch["review"], batch["review_row"]
    doubled = torch.cat([review, review])
    doubled_rows = torch.cat([rows, rows])
    calls = []
    transformer = model.review_encoder.transformer
    original = transformer.forward
    transformer.forward = lambda tokens: calls.append(tokens.shape[0]) or original(tokens)
    with torch.no_grad():
        single = model.review_encoder(review, rows, 4)
        twice = model.review_encoder(doubled, doubled_rows, 4)
    assert calls[1] == calls[0] == torch.unique(review, dim=0).shape[0]
    assert torch.allclose(twice.sentences[: review.shape[0]], single.sentences, atol=1e-6)
    assert torch.allclose(twice.sentences[review.shape[0]:], single.sentences, atol=1e-6)


def test_frozen_encoders_get_no_gradient_and_the_kg_is_encoded_once():
    model = tiny_c2crs.model().train()
    model.freeze(["kg", "history"])
    encodes = []
    original = model.kg_encoder.encode_graph
    model.kg_encoder.encode_graph = lambda: encodes.append(1) or original()
    for _ in range(2):
        loss, _ = model.converse(tiny_c2crs.batch(), "train")
        model.zero_grad()
        loss.backward()
    assert len(encodes) == 1
    assert all(p.grad is None for p in model.kg_encoder.parameters())
    shared = {id(p) for p in model.token_embedding.parameters()}
    assert all(p.grad is None for p in model.history_encoder.parameters() if id(p) not in shared)
    assert model.token_embedding.weight.grad is not None
    assert any(p.grad is not None for p in model.decoder.parameters())


def test_a_frozen_review_encoder_gets_no_gradient_and_no_dropout():
    model = tiny_c2crs.model(dropout=0.5).train()
    model.freeze(["kg", "history", "review"])
    assert not model.review_encoder.training and model.decoder.training
    loss, _ = model.converse(tiny_c2crs.batch(), "train")
    loss.backward()
    shared = {id(p) for p in model.token_embedding.parameters()}
    assert all(p.grad is None for p in model.review_encoder.parameters() if id(p) not in shared)
    assert model.token_embedding.weight.grad is not None
    # only the decoder's own parts train: the same batch gives the same memory twice
    batch = tiny_c2crs.batch()
    first, second = (model._conv_memory(batch).review for _ in range(2))
    torch.testing.assert_close(first, second)


def test_repeated_eval_calls_keep_the_cached_kg():
    model = tiny_c2crs.model()
    encodes = []
    original = model.kg_encoder.encode_graph
    model.kg_encoder.encode_graph = lambda: encodes.append(1) or original()
    with torch.no_grad():
        for _ in range(3):
            model.eval()
            model.recommend(tiny_c2crs.batch(), "test")
    assert len(encodes) == 1
    model.train()
    model.eval()
    with torch.no_grad():
        model.recommend(tiny_c2crs.batch(), "test")
    assert len(encodes) == 2


def test_frozen_encoders_run_without_dropout_in_training():
    """A frozen encoder is a fixed feature extractor: before the fix its dropout stayed on, so its features
    changed from step to step although none of its weights did."""
    model = tiny_c2crs.model(dropout=0.5).train()
    model.freeze(["history"])
    model.train()
    assert not model.history_encoder.training and model.decoder.training
    batch = tiny_c2crs.batch()
    first, second = (model.history_encoder(batch["context"]).states for _ in range(2))
    torch.testing.assert_close(first, second)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    """Recomputed layers must see the forward pass's dropout masks: with dropout on, the step is identical."""
    results = []
    for checkpointing in (False, True):
        model = tiny_c2crs.model(dropout=0.3, relu_dropout=0.3, gradient_checkpointing=checkpointing).train()
        torch.manual_seed(7)
        loss, _ = model.pretrain(tiny_c2crs.batch(), "fine")
        loss.backward()
        results.append((loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()
                                        if p.grad is not None}))
    (loss_off, grads_off), (loss_on, grads_on) = results
    assert model.history_encoder.transformer.gradient_checkpointing
    torch.testing.assert_close(loss_on, loss_off, rtol=0, atol=0)
    assert grads_on.keys() == grads_off.keys()
    assert any(name.startswith("history_encoder.transformer.layers") for name in grads_on)
    for name, grad in grads_off.items():
        torch.testing.assert_close(grads_on[name], grad, rtol=1e-6, atol=1e-7, msg=name)


def test_bf16_mixed_precision_runs_the_encoder_layers_in_bf16_and_keeps_the_rest_float32():
    results = {}
    for precision in ("fp32", "bf16"):
        model = tiny_c2crs.model(dropout=0.0, relu_dropout=0.0, mixed_precision=precision).train()
        dtypes = []
        layer = model.history_encoder.transformer.layers[0].ffn.lin1
        layer.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
        torch.manual_seed(7)
        encoding = model.history_encoder(tiny_c2crs.batch()["context"])
        loss, _ = model.pretrain(tiny_c2crs.batch(), "fine")
        loss.backward()
        assert encoding.states.dtype == encoding.pooled.dtype == torch.float32
        assert all(p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32)
                   for p in model.parameters())
        results[precision] = (dtypes[0], encoding.states.detach(), loss.detach())
    assert results["fp32"][0] == torch.float32 and results["bf16"][0] == torch.bfloat16
    # bfloat16 keeps 8 bits of mantissa: the same function, rounded
    torch.testing.assert_close(results["bf16"][1], results["fp32"][1], rtol=0.05, atol=0.05)
    torch.testing.assert_close(results["bf16"][2], results["fp32"][2], rtol=0.02, atol=0.0)
    assert not torch.equal(results["bf16"][1], results["fp32"][1])
