"""The id floor (crslab_c2crs.model.c2crs.id_floor): views that share their entities are matched by ids alone,
views that do not are not; chance is ln(2n - 1) for n coarse pairs; the floor is reported in validation."""
import math

import pytest
import torch

import tiny_c2crs as tiny
from crslab_c2crs.model.c2crs.id_floor import IdFloor

VIEWS = ("history", "kg", "review")


def shared_batch(rows=6, shift_reviews=0):
    """Row r mentions entity r + 1, has it as its context entity and, shifted by ``shift_reviews``, a review."""
    entities = torch.arange(1, rows + 1)
    return {"context": torch.ones(rows, 3, dtype=torch.long), "context_entities": entities[:, None],
            "mention_row": torch.arange(rows), "mention_start": torch.zeros(rows, dtype=torch.long),
            "mention_end": torch.ones(rows, dtype=torch.long), "mention_entity": entities,
            "review": torch.arange(rows)[:, None] + 10, "review_row": torch.arange(rows),
            "review_entity": (entities + shift_reviews - 1) % rows + 1}


def test_views_that_share_their_entities_are_matched_by_ids_alone():
    floor = IdFloor(n_entity=10, dim=256)
    terms = floor.terms(shared_batch(), "coarse", 0.07, VIEWS)
    chance = floor.terms(shared_batch(), "coarse", 0.07, VIEWS, chance=True)
    assert set(terms) == {"coarse/history-kg", "coarse/history-review", "coarse/kg-review"}
    for name, value in chance.items():
        assert value == pytest.approx(math.log(2 * 6 - 1), abs=1e-5)
        assert terms[name] < 0.05 * value, name
    fine = floor.terms(shared_batch(), "fine", 0.07, VIEWS)
    assert fine["fine/history-kg"] < 0.05 * floor.terms(shared_batch(), "fine", 0.07, VIEWS, True)["fine/history-kg"]


def test_views_about_other_entities_stay_near_chance():
    floor = IdFloor(n_entity=10, dim=256)
    terms = floor.terms(shared_batch(shift_reviews=1), "coarse", 0.07, VIEWS)
    chance = math.log(2 * 6 - 1)
    assert terms["coarse/history-kg"] < 0.05 * chance  # still shared
    assert terms["coarse/kg-review"] > 0.5 * chance     # reviews about another entity: ids cannot match them


def test_a_context_without_mentions_is_a_zero_history_vector():
    batch = shared_batch()
    keep = batch["mention_row"] != 0
    for key in ("mention_row", "mention_start", "mention_end", "mention_entity"):
        batch[key] = batch[key][keep]
    terms = IdFloor(n_entity=10, dim=256).terms(batch, "coarse", 0.07, ("history", "kg"))
    assert math.isfinite(terms["coarse/history-kg"]) and terms["coarse/history-kg"] > 0.1


def test_disabled_views_and_levels():
    floor = IdFloor(n_entity=10, dim=32)
    assert set(floor.terms(shared_batch(), "coarse", 0.07, ("history", "kg"))) == {"coarse/history-kg"}
    with pytest.raises(ValueError, match="coarse or fine"):
        floor.terms(shared_batch(), "multitask", 0.07, VIEWS)
    floor.terms(tiny.batch(), "fine", 0.07, VIEWS)  # the tiny model's batch contract works as is


def test_a_masked_history_view_shows_the_floor_no_id():
    """Ids alone give a blind history view nothing: its terms' floor is chance, ln(2n - 1), also where the other
    view's rows share entities (zero history vectors would put the term above chance there)."""
    floor = IdFloor(n_entity=10, dim=256)
    batch = shared_batch()
    batch["context_entities"] = torch.stack([batch["context_entities"][:, 0], torch.full((6,), 7)], dim=1)
    hidden = dict(batch, history_ids_hidden=torch.tensor(True))
    terms = floor.terms(hidden, "coarse", 0.07, VIEWS)
    chance = floor.terms(hidden, "coarse", 0.07, VIEWS, chance=True)
    assert chance == pytest.approx({name: math.log(2 * 6 - 1) for name in chance}, abs=1e-5)
    assert terms["coarse/history-kg"] == terms["coarse/history-review"] == pytest.approx(math.log(2 * 6 - 1))
    assert terms["coarse/kg-review"] < 0.5 * math.log(2 * 6 - 1)     # untouched views: ids still match them
    fine = floor.terms(hidden, "fine", 0.07, VIEWS)
    fine_chance = floor.terms(hidden, "fine", 0.07, VIEWS, chance=True)
    assert fine["fine/history-kg"] == fine_chance["fine/history-kg"]
