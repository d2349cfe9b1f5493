"""History, KG and review encoders: output shapes, masking, and invariance to padding."""
import pytest
import torch
import torch.nn.functional as F

import tiny_c2crs as tiny
from crslab_c2crs.model.c2crs.encoders import SelfAttentivePooling, mention_representations, pack_by_row


@pytest.fixture(scope="module")
def model():
    return tiny.model().eval()


def test_history_encoder_shapes_and_padding_invariance(model):
    batch = tiny.batch()
    context = batch["context"]
    out = model.history_encoder(context)
    batch_size, seq_len = context.shape
    assert out.states.shape == (batch_size, seq_len, 16)
    assert out.pooled.shape == (batch_size, 16)
    assert torch.equal(out.pad_mask, context.eq(0))
    assert torch.all(out.states[out.pad_mask] == 0)

    right = model.history_encoder(F.pad(context, (0, 5)))
    torch.testing.assert_close(right.states[:, :seq_len], out.states)
    torch.testing.assert_close(right.pooled, out.pooled)

    # left padding: same tokens moved to the end of the row
    lengths = context.ne(0).sum(1)
    left = torch.zeros_like(context)
    for row, length in enumerate(lengths.tolist()):
        left[row, seq_len - length :] = context[row, :length]
    shifted = model.history_encoder(left)
    torch.testing.assert_close(shifted.pooled, out.pooled)
    torch.testing.assert_close(shifted.states[0, seq_len - lengths[0] :], out.states[0, : lengths[0]])


def test_kg_encoder_shapes_masking_and_empty_samples(model):
    nodes = model.kg_encoder.encode_graph()
    assert nodes.shape == (tiny.N_ENTITY, 24)
    entities = tiny.batch()["context_entities"]
    out = model.kg_encoder(entities, nodes)
    assert out.pooled.shape == (4, 24)
    assert out.entity_states.shape == (*entities.shape, 24)
    assert out.valid.tolist() == [True, True, False, True]
    assert torch.all(out.pooled[2] == 0)
    padded = model.kg_encoder(F.pad(entities, (0, 3)), nodes)
    torch.testing.assert_close(padded.pooled, out.pooled)
    # a single entity pools to its own node representation
    single = model.kg_encoder(torch.tensor([[0, 4, 0]]), nodes)
    torch.testing.assert_close(single.pooled[0], nodes[4])


def test_kg_activation_is_applied_after_the_rgcn():
    relu = tiny.model(kg_activation="relu").kg_encoder.encode_graph()
    identity = tiny.model(kg_activation="identity").kg_encoder.encode_graph()
    torch.testing.assert_close(relu, identity.clamp(min=0))
    assert (identity < 0).any()


def test_review_encoder_shapes_grouping_and_padding(model):
    batch = tiny.batch()
    out = model.review_encoder(batch["review"], batch["review_row"], 4)
    assert out.sentences.shape == (6, 16)
    assert out.packed.shape == (4, 2, 16)
    assert out.valid.tolist() == [True, True, False, True]
    assert torch.all(out.pooled[2] == 0)
    # sample 1's sentences are review rows 2 and 3, in order
    torch.testing.assert_close(out.packed[1], out.sentences[2:4])

    # extra pad tokens and an extra all-padding review row change nothing
    review = torch.cat([F.pad(batch["review"], (0, 4)), torch.zeros(1, 9, dtype=torch.long)])
    rows = torch.cat([batch["review_row"], torch.tensor([2])])
    padded = model.review_encoder(review, rows, 4)
    torch.testing.assert_close(padded.pooled, out.pooled)
    torch.testing.assert_close(padded.sentences[:6], out.sentences)
    assert padded.sentence_valid.tolist() == [True] * 6 + [False]


@pytest.mark.parametrize("width", [5, 0])
def test_review_encoder_without_any_review(model, width):
    out = model.review_encoder(torch.zeros(0, width, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3)
    assert out.sentences.shape == (0, 16)
    assert out.packed.shape == (3, 1, 16) and out.packed_pad_mask.all()
    assert torch.all(out.pooled == 0) and not out.valid.any()


def test_inputs_longer_than_the_position_table_are_rejected(model):
    with pytest.raises(ValueError, match="n_positions"):
        model.history_encoder(torch.ones(1, 65, dtype=torch.long))


def test_self_attentive_pooling_matches_its_formula():
    torch.manual_seed(0)
    pooling = SelfAttentivePooling(4)
    x = torch.randn(1, 3, 4)
    weights = torch.softmax((torch.tanh(x[0] @ pooling.weight) @ pooling.score).squeeze(-1), dim=0)
    torch.testing.assert_close(pooling(x, torch.zeros(1, 3, dtype=torch.bool))[0], weights @ x[0])


def test_mention_representation_is_the_span_mean():
    states = torch.arange(2 * 5 * 3, dtype=torch.float).reshape(2, 5, 3)
    reps = mention_representations(states, torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([4, 3]))
    torch.testing.assert_close(reps, torch.stack([states[0, 1:4].mean(0), states[1, 2]]))
    empty = mention_representations(states, *(torch.zeros(0, dtype=torch.long),) * 3)
    assert empty.shape == (0, 3)
    with pytest.raises(ValueError, match="non-empty token span"):
        mention_representations(states, torch.tensor([0]), torch.tensor([2]), torch.tensor([2]))


def test_pack_by_row_keeps_order_within_rows():
    values = torch.arange(5, dtype=torch.float).unsqueeze(1)
    packed, pad = pack_by_row(values, torch.tensor([2, 0, 2, 2, 0]), 4)
    assert packed.squeeze(-1).tolist() == [[1, 4, 0], [0, 0, 0], [0, 2, 3], [0, 0, 0]]
    assert pad.tolist() == [[False, False, True], [True] * 3, [False] * 3, [True] * 3]
