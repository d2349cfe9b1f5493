"""C2CRSModel end to end: every stage forward/backward, empty views, ablations, recommendation, KG cache."""
import pytest
import torch

import tiny_c2crs as tiny
from crslab_c2crs.errors import ConfigError
from crslab_c2crs.model.c2crs.model import STAGES

PRETRAIN_STAGES = [stage for stage in STAGES if stage.startswith("pretrain_")]


def _backward_ok(loss, model):
    assert torch.isfinite(loss)
    model.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_runs_forward_and_backward(stage):
    model = tiny.model().train()
    loss, out = model(tiny.batch(), stage, "train")
    _backward_ok(loss, model)
    if stage == "rec":
        assert out.shape == (4, len(tiny.ITEMS))
    elif stage == "conv":
        assert out.shape == (4, tiny.batch()["response"].shape[1] - 1)
    else:
        assert out["loss"] == pytest.approx(loss.item())


def test_pretraining_loss_composition():
    model = tiny.model().eval()
    batch = tiny.batch()
    _, coarse = model.pretrain(batch, "coarse")
    _, fine = model.pretrain(batch, "fine")
    _, multi = model.pretrain(batch, "multitask")
    pairs = ["history-kg", "history-review", "kg-review"]
    assert coarse["coarse_loss"] == pytest.approx(sum(coarse[f"coarse/{p}"] for p in pairs), rel=1e-5)
    assert fine["loss"] == pytest.approx(fine["fine_loss"] + 0.2 * fine["coarse_loss"], rel=1e-5)
    assert multi["loss"] == pytest.approx(
        multi["fine_loss"] + 0.2 * multi["coarse_loss"] + multi["rec_loss"] + multi["gen_loss"], rel=1e-5
    )
    without_response = {k: v for k, v in batch.items() if k != "response"}
    assert "gen_loss" not in model.pretrain(without_response, "multitask")[1]
    with pytest.raises(ValueError, match="pretrain level"):
        model.pretrain(batch, "medium")


@pytest.mark.parametrize("mentions, reviews", [(False, True), (True, False), (False, False)])
def test_batches_with_empty_views(mentions, reviews):
    model = tiny.model().train()
    batch = tiny.batch(mentions=mentions, reviews=reviews)
    for stage in STAGES:
        loss, _ = model(batch, stage, "train")
        _backward_ok(loss, model)
    _, parts = model.pretrain(batch, "fine")
    if not mentions:
        assert parts["fine/history-kg"] == 0.0 and parts["fine/history-review"] == 0.0
    if not reviews:
        assert parts["fine/kg-review"] == 0.0 and parts["coarse/history-review"] == 0.0
    model.eval()
    _, generated = model.converse(batch, "test")
    assert generated.shape[0] == 4


def test_fine_units_pair_mentions_nodes_and_sentences_of_the_same_sample():
    model = tiny.model().eval()
    batch = tiny.batch()
    enc = model._encode(batch, True, True, True)
    word, entity, sentence = model._fine_units(batch, enc)
    assert word.keys.tolist() == [3, 5, 3, 7, 8, 8]
    assert entity.keys.tolist() == [2, 3, 5, 7, 8]
    # every review sentence of the tiny batch is distinct, so each is a unit
    assert sorted(sentence.keys.tolist()) == [2, 3, 3, 5, 7, 8]
    torch.testing.assert_close(entity.reps, enc.nodes[entity.keys])
    assert {tuple(row.tolist()) for row in sentence.reps} == {tuple(row.tolist()) for row in enc.review.sentences}


@pytest.mark.parametrize("flag, view", [("use_history", "history"), ("use_kg", "kg"), ("use_review", "review")])
def test_ablation_flags_remove_the_view(flag, view):
    model = tiny.model(**{flag: False}).train()
    assert view not in model.heads.coarse and view not in model.heads.fine
    for layer in model.decoder.layers:
        assert view not in layer.cross_attention
    if view == "history":
        assert model.history_encoder is None
    if view == "review":
        assert model.review_encoder is None
    user_views = 2 if view == "history" else 1  # e_G and e_R feed the copy gate, e_C never does
    assert model.decoder.copy_fusion.in_features == 16 * (1 + user_views)
    batch = tiny.batch()
    for stage in STAGES:
        loss, out = model(batch, stage, "train")
        _backward_ok(loss, model)
        if stage.startswith("pretrain_"):
            assert not any(view in key for key in out if "/" in key)
    model.eval()
    assert model.converse(batch, "test")[1].shape[0] == 4


def test_recommend_scores_items_by_dot_product_with_the_kg_user_plus_the_item_bias():
    model = tiny.model().eval()
    with torch.no_grad():
        model.recommender.bias.copy_(torch.arange(len(tiny.ITEMS), dtype=torch.float))
    batch = tiny.batch()
    loss, scores = model.recommend(batch, "test")
    nodes = model.encode_kg()
    user = model.kg_encoder(batch["context_entities"], nodes).pooled
    torch.testing.assert_close(scores, user @ nodes[tiny.ITEMS].t() + model.recommender.bias)
    target = torch.tensor([tiny.ITEMS.index(item) for item in batch["item"].tolist()])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(scores, target))
    assert model.recommender.item_index(torch.tensor(tiny.ITEMS)).tolist() == list(range(len(tiny.ITEMS)))
    bad = dict(batch, item=torch.tensor([2, 4, 9, 3]))
    with pytest.raises(ValueError, match=r"\[4\]"):
        model.recommend(bad, "train")


def test_the_history_fallback_scores_a_context_without_entities_by_its_history_view():
    """rec_history_fallback: row 2 (no context entity) takes its history view mapped into the KG space; the other
    rows keep e_G; the map starts at zero, so an untrained fallback scores like none, and it learns."""
    plain, fallback = tiny.model().eval(), tiny.model(rec_history_fallback=True).eval()
    batch = tiny.batch()
    fallback.load_state_dict(plain.state_dict())  # a checkpoint without the fallback: it starts at zero
    torch.testing.assert_close(fallback.recommend(batch, "test")[1], plain.recommend(batch, "test")[1])
    layer = fallback.recommender.history_fallback
    with torch.no_grad():
        layer.weight.normal_()
    scores = fallback.recommend(batch, "test")[1]
    nodes = fallback.encode_kg()
    kg = fallback.kg_encoder(batch["context_entities"], nodes)
    assert kg.valid.tolist() == [True, True, False, True]
    history = fallback.history_encoder(batch["context"][2:3]).pooled
    torch.testing.assert_close(scores[2], (layer(history) @ nodes[tiny.ITEMS].t() + fallback.recommender.bias)[0])
    torch.testing.assert_close(scores[[0, 1, 3]], plain.recommend(batch, "test")[1][[0, 1, 3]])
    fallback.train()
    fallback.recommend(batch, "train")[0].backward()
    assert layer.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in fallback.history_encoder.parameters())


def test_a_trained_history_fallback_does_not_load_into_a_model_without_it():
    trained = tiny.model(rec_history_fallback=True)
    with torch.no_grad():
        trained.recommender.history_fallback.weight.fill_(1.0)
    with pytest.raises(RuntimeError, match="history_fallback"):
        tiny.model().load_state_dict(trained.state_dict())
    tiny.model().load_state_dict(tiny.model(rec_history_fallback=True).state_dict())  # untrained: zero, fits


def test_the_history_fallback_needs_the_history_view():
    with pytest.raises(ConfigError, match="rec_history_fallback"):
        tiny.model(rec_history_fallback=True, use_history=False)


def test_kg_is_encoded_once_per_step_and_cached_in_eval_until_parameters_change():
    model = tiny.model()
    calls = []
    model.kg_encoder.rgcn.register_forward_hook(lambda *args: calls.append(1))
    batch = tiny.batch()
    model.train()
    for stage in STAGES:
        model(batch, stage, "train")
    assert len(calls) == len(STAGES)  # one full-graph pass per training step, whatever the stage

    calls.clear()
    model.eval()
    with torch.no_grad():
        for _ in range(3):
            model.recommend(batch, "valid")
        model.converse(batch, "test")
    assert len(calls) == 1

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss, _ = model.recommend(batch, "train")
    loss.backward()
    optimizer.step()
    model.eval()
    calls.clear()
    with torch.no_grad():
        model.recommend(batch, "valid")
        model.kg_cache_clear()
        model.recommend(batch, "valid")
    assert len(calls) == 2

    # an optimiser-style in-place update, with no mode switch, also invalidates the cache
    calls.clear()
    with torch.no_grad():
        model.recommend(batch, "valid")
        assert calls == []
        next(model.kg_encoder.rgcn.parameters()).add_(1.0)
        model.recommend(batch, "valid")
    assert len(calls) == 1


def test_unknown_stage_and_mode_are_rejected():
    model = tiny.model()
    with pytest.raises(ValueError, match="stage"):
        model(tiny.batch(), "policy", "train")
    with pytest.raises(ValueError, match="mode"):
        model(tiny.batch(), "rec", "dev")


def _train_on_entityless_rows(model, steps=30):
    """A few rec steps on batches whose every row has no context entity and whose target is item 9."""
    batch = dict(tiny.batch(), context_entities=torch.zeros(4, 2, dtype=torch.long), item=torch.tensor([9, 9, 9, 3]))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(steps):
        loss, _ = model.recommend(batch, "train")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return model.recommend(batch, "test")[1]


def test_an_entityless_context_ranks_by_the_learned_item_prior():
    # e_u = 0 for a context without entities: only the bias can tell the items apart
    scores = _train_on_entityless_rows(tiny.model())
    assert int(scores[0].argmax()) == tiny.ITEMS.index(9)
    assert torch.equal(scores[0], scores[3])  # one prior for every entity-less row
    flat = _train_on_entityless_rows(tiny.model(rec_bias=False))
    assert torch.equal(flat, torch.zeros_like(flat))  # Eq. 8 as printed: every item scores 0, nothing is learned


def test_a_checkpoint_without_the_item_bias_loads_as_a_zero_bias():
    old = tiny.model(rec_bias=False).state_dict()
    assert not any(key.startswith("recommender.") for key in old)
    model = tiny.model(seed=1)
    with torch.no_grad():
        model.recommender.bias.fill_(3.0)
    model.load_state_dict(old)
    assert torch.equal(model.recommender.bias.detach(), torch.zeros(len(tiny.ITEMS)))


def test_an_untrained_bias_loads_into_a_bias_free_recommender_and_a_trained_one_does_not():
    pretrained = tiny.model().state_dict()  # a pre-training checkpoint: the bias is still zero
    tiny.model(rec_bias=False).load_state_dict(pretrained)
    pretrained["recommender.bias"] = torch.ones(len(tiny.ITEMS))
    with pytest.raises(RuntimeError, match="recommender.bias"):
        tiny.model(rec_bias=False).load_state_dict(pretrained)
