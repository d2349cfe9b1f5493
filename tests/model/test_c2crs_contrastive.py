"""Coarse and fine contrastive objectives against hand-computed values and a brute-force reference."""
import math
from itertools import combinations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tiny_c2crs as tiny
from crslab_c2crs.model.c2crs.contrastive import (
    FineUnits,
    coarse_loss,
    entity_units,
    fine_loss,
    info_nce,
    keyed_info_nce,
)


def _identity_heads(*views):
    return nn.ModuleDict({view: nn.Identity() for view in views})


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_info_nce_by_hand_on_two_by_two(temperature):
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[2.0, 0.0], [3.0, 0.0]])  # both normalise to (1, 0)
    e = math.exp(1.0 / temperature)
    # anchors x1, x2, y1, y2: -log(exp(pos) / sum over the three other rows)
    expected = [math.log((2 * e + 1) / e), math.log(3.0), math.log((2 * e + 1) / e), math.log(1 + 2 * e)]
    assert info_nce(x, y, temperature).item() == pytest.approx(sum(expected) / 4, rel=1e-6)


def test_info_nce_of_empty_views_is_a_connected_zero():
    x = torch.zeros(0, 3, requires_grad=True)
    loss = info_nce(x, torch.zeros(0, 3), 0.1)
    loss.backward()
    assert loss.item() == 0.0 and x.grad is not None


def test_keyed_info_nce_with_unique_keys_is_info_nce():
    torch.manual_seed(0)
    x, y = torch.randn(5, 4), torch.randn(5, 4)
    keys = torch.arange(5)
    torch.testing.assert_close(keyed_info_nce(x, y, keys, keys, 0.3), info_nce(x, y, 0.3))


def _brute_force_pair(x, y, key_x, key_y, temperature):
    """Per anchor: average over its cross-view same-key partners of -log softmax over all other units
    except same-view same-key ones; mean over anchors with at least one partner."""
    units = [(v, 0, k) for v, k in zip(F.normalize(x, dim=-1), key_x.tolist())]
    units += [(v, 1, k) for v, k in zip(F.normalize(y, dim=-1), key_y.tolist())]
    losses = []
    for i, (zi, view_i, key_i) in enumerate(units):
        positives = [j for j, (_, view, key) in enumerate(units) if view != view_i and key == key_i]
        if not positives:
            continue
        candidates = [j for j, (_, view, key) in enumerate(units) if j != i and not (view == view_i and key == key_i)]
        denominator = sum(math.exp(float(zi @ units[j][0]) / temperature) for j in candidates)
        terms = [-math.log(math.exp(float(zi @ units[p][0]) / temperature) / denominator) for p in positives]
        losses.append(sum(terms) / len(terms))
    return sum(losses) / len(losses) if losses else 0.0


def test_fine_loss_matches_brute_force_on_the_tiny_batch_keys():
    batch = tiny.batch()
    word_keys, sentence_keys = batch["mention_entity"], batch["review_entity"]
    entity_keys = entity_units(word_keys, sentence_keys)
    # entity 3 of rows 0 and 1 is one KG unit (one node vector), as is entity 8 mentioned twice in row 3
    assert entity_keys.tolist() == [2, 3, 5, 7, 8]

    torch.manual_seed(0)
    word = FineUnits(torch.randn(len(word_keys), 6), word_keys)
    entity = FineUnits(torch.randn(len(entity_keys), 6), entity_keys)
    sentence = FineUnits(torch.randn(len(sentence_keys), 6), sentence_keys)
    loss, terms = fine_loss(word, entity, sentence, _identity_heads("history", "kg", "review"), 0.2)
    views = {"history": word, "kg": entity, "review": sentence}
    for a, b in combinations(views, 2):
        expected = _brute_force_pair(views[a].reps, views[b].reps, views[a].keys, views[b].keys, 0.2)
        assert terms[f"{a}-{b}"].item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)


def test_fine_negatives_come_from_other_samples_too():
    """The reference zeroed cross-sample logits; here a unit of another sample's entity is a real negative."""
    word = torch.tensor([[1.0, 0.0]])
    entity_same = torch.tensor([[1.0, 0.2]])
    keys_word, keys_entity = torch.tensor([3]), torch.tensor([3, 4])  # entity 4 comes from another sample

    def loss_with_other_sample_unit(vector):
        return keyed_info_nce(word, torch.cat([entity_same, vector]), keys_word, keys_entity, 0.5).item()

    close, far = torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]])
    assert loss_with_other_sample_unit(close) > loss_with_other_sample_unit(far)


def test_the_same_entity_in_two_samples_is_never_a_negative():
    """Before the fix units were keyed per sample, so row 1's copy of entity 3 (an identical node vector and
    review sentence) was a negative of row 0's positive and the loss could not fall below log 2."""
    model = tiny.model().eval()
    batch = tiny.batch()
    # rows 0 and 1 both mention entity 3 and carry the same review sentence about it
    batch["review"][3] = batch["review"][0]
    enc = model._encode(batch, True, True, True)
    word, entity, sentence = model._fine_units(batch, enc)
    assert entity.keys.tolist() == [2, 3, 5, 7, 8]
    assert sorted(sentence.keys.tolist()) == [2, 3, 5, 7, 8]
    # a perfect alignment (every unit of an entity the same direction) reaches the multi-positive floor,
    # mean log(#positives); a duplicate counted as a negative would add about log 2 to its anchors
    directions = torch.eye(tiny.N_ENTITY)
    heads = _identity_heads("history", "kg", "review")
    aligned = {view: FineUnits(directions[units.keys], units.keys)
               for view, units in (("history", word), ("kg", entity), ("review", sentence))}
    _, terms = fine_loss(*aligned.values(), heads, 0.05)
    for a, b in combinations(aligned, 2):
        floors = [math.log(int((other.keys == key).sum()))
                  for mine, other in ((aligned[a], aligned[b]), (aligned[b], aligned[a]))
                  for key in mine.keys if bool((other.keys == key).any())]
        assert terms[f"{a}-{b}"].item() == pytest.approx(sum(floors) / len(floors), abs=1e-4)


def test_fine_loss_with_empty_views_contributes_nothing():
    heads = _identity_heads("history", "kg", "review")
    empty = FineUnits(torch.zeros(0, 4, requires_grad=True), torch.zeros(0, dtype=torch.long))
    entity = FineUnits(torch.randn(2, 4, requires_grad=True), torch.tensor([3, 5]))
    loss, terms = fine_loss(empty, entity, empty, heads, 0.1)
    assert loss.item() == 0.0 and all(t.item() == 0.0 for t in terms.values())
    loss.backward()
    # no matching keys at all: still zero, no fake positives
    other = FineUnits(torch.randn(2, 4), torch.tensor([4, 6]))
    assert fine_loss(other, entity, None, heads, 0.1)[0].item() == 0.0


def test_coarse_loss_sums_pairs_and_drops_rows_without_data():
    torch.manual_seed(0)
    e_C, e_G, e_R = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    valid_G = torch.tensor([True, True, False, True])
    valid_R = torch.tensor([True, False, True, True])
    heads = _identity_heads("history", "kg", "review")
    loss, terms = coarse_loss(e_C, e_G, e_R, heads, 0.1, valid_G=valid_G, valid_R=valid_R)
    torch.testing.assert_close(terms["history-kg"], info_nce(e_C[valid_G], e_G[valid_G], 0.1))
    torch.testing.assert_close(terms["history-review"], info_nce(e_C[valid_R], e_R[valid_R], 0.1))
    both = valid_G & valid_R
    torch.testing.assert_close(terms["kg-review"], info_nce(e_G[both], e_R[both], 0.1))
    torch.testing.assert_close(loss, sum(terms.values()))


def test_coarse_loss_drops_pairs_of_disabled_views():
    torch.manual_seed(0)
    e_C, e_R = torch.randn(3, 5), torch.randn(3, 5)
    loss, terms = coarse_loss(e_C, None, e_R, _identity_heads("history", "review"), 0.1)
    assert list(terms) == ["history-review"]
    torch.testing.assert_close(loss, info_nce(e_C, e_R, 0.1))
    with pytest.raises(ValueError, match="at least one"):
        coarse_loss(None, None, None, _identity_heads(), 0.1)
