"""BasisFirstRGCNConv must be PyG's featureless RGCNConv, only faster."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.nn import RGCNConv

from crslab_c2crs.model.rgcn import (
    BasisFirstRGCNConv,
    PyGCompatibleBasisFirstRGCNConv,
    build_rgcn,
)

PARAMS = ("bias", "comp", "root", "weight")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def random_graph(
    num_nodes: int, num_relations: int, num_edges: int, seed: int
) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    edge_type = torch.randint(0, num_relations, (num_edges,), generator=gen)
    return edge_index, edge_type


def pair(
    num_nodes: int,
    out: int,
    num_relations: int,
    num_bases: int | None,
    **kwargs: object,
) -> tuple[RGCNConv, BasisFirstRGCNConv]:
    reference = RGCNConv(
        num_nodes, out, num_relations, num_bases=num_bases, **kwargs
    ).double()
    fast = BasisFirstRGCNConv(
        num_nodes, out, num_relations, num_bases=num_bases, **kwargs
    ).double()
    fast.load_state_dict(reference.state_dict())
    return reference, fast


def assert_same_output_and_grads(
    reference: nn.Module,
    fast: nn.Module,
    edge_index: Tensor,
    edge_type: Tensor,
    rtol: float = 0.0,
) -> None:
    expected = reference(None, edge_index, edge_type)
    actual = fast(None, edge_index, edge_type)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=1e-6)
    grad_out = torch.randn_like(expected)
    ref_params = dict(reference.named_parameters())
    fast_params = dict(fast.named_parameters())
    assert ref_params.keys() == fast_params.keys()
    names = sorted(ref_params)
    expected_grads = torch.autograd.grad(
        expected, [ref_params[n] for n in names], grad_out
    )
    actual_grads = torch.autograd.grad(
        actual, [fast_params[n] for n in names], grad_out
    )
    for name, a, e in zip(names, actual_grads, expected_grads):
        torch.testing.assert_close(
            a, e, rtol=rtol, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}"
        )


def test_hand_built_graph_shape_and_values() -> None:
    # 0 -r0-> 1, 2 -r0-> 1, 3 -r1-> 1, 1 -r1-> 0: node 1 averages two r0
    # messages but takes its single r1 message unscaled.
    edge_index = torch.tensor([[0, 2, 3, 1], [1, 1, 1, 0]])
    edge_type = torch.tensor([0, 0, 1, 1])
    conv = BasisFirstRGCNConv(4, 3, num_relations=2, num_bases=2).double()
    out = conv(None, edge_index, edge_type)
    assert out.shape == (4, 3)

    w = torch.einsum("rb,bio->rio", conv.comp, conv.weight).detach()
    root, bias = conv.root.detach(), conv.bias.detach()
    expected = root + bias
    expected[1] += (w[0, 0] + w[0, 2]) / 2 + w[1, 3]
    expected[0] += w[1, 1]
    torch.testing.assert_close(out.detach(), expected)

    reference = RGCNConv(4, 3, 2, num_bases=2).double()
    reference.load_state_dict(conv.state_dict())
    torch.testing.assert_close(out, reference(None, edge_index, edge_type))


@pytest.mark.parametrize(
    ("num_nodes", "num_relations", "num_edges", "num_bases", "seed"),
    [
        (10, 3, 40, 2, 0),
        (37, 5, 200, 4, 1),
        (64, 7, 500, 8, 2),
        (20, 4, 300, 3, 3),  # dense enough for duplicate edges
        (25, 6, 80, None, 4),  # full per-relation weights
    ],
)
def test_matches_pyg(
    num_nodes: int, num_relations: int, num_edges: int, num_bases: int | None, seed: int
) -> None:
    torch.manual_seed(seed)
    edge_index, edge_type = random_graph(num_nodes, num_relations, num_edges, seed)
    reference, fast = pair(num_nodes, 6, num_relations, num_bases)
    assert_same_output_and_grads(reference, fast, edge_index, edge_type)


@pytest.mark.parametrize(
    "kwargs", [{"aggr": "add"}, {"root_weight": False, "bias": False}]
)
def test_matches_pyg_variants(kwargs: dict[str, object]) -> None:
    torch.manual_seed(5)
    edge_index, edge_type = random_graph(30, 4, 150, seed=5)
    reference, fast = pair(30, 5, 4, 3, **kwargs)
    assert_same_output_and_grads(reference, fast, edge_index, edge_type)


def test_float32_matches_pyg() -> None:
    torch.manual_seed(6)
    edge_index, edge_type = random_graph(200, 6, 2000, seed=6)
    reference = RGCNConv(200, 16, 6, num_bases=4)
    fast = BasisFirstRGCNConv(200, 16, 6, num_bases=4)
    fast.load_state_dict(reference.state_dict())
    # comp's gradient sums thousands of float32 terms in a different order
    # than PyG, so allow float32 rounding relative to its O(1) magnitude.
    assert_same_output_and_grads(reference, fast, edge_index, edge_type, rtol=1e-5)


def test_nodes_without_incoming_edges_of_a_relation() -> None:
    # Node 4 receives nothing, node 3 only relation 2, relation 1 is unused:
    # empty (target, relation) groups must contribute zero, not NaN.
    edge_index = torch.tensor([[0, 1, 2, 0], [3, 3, 0, 1]])
    edge_type = torch.tensor([2, 2, 0, 0])
    torch.manual_seed(7)
    reference, fast = pair(5, 4, 3, 2)
    out = fast(None, edge_index, edge_type)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[4], (fast.root[4] + fast.bias))
    assert_same_output_and_grads(reference, fast, edge_index, edge_type)
    comp_grad = torch.autograd.grad(fast(None, edge_index, edge_type).sum(), fast.comp)[
        0
    ]
    assert torch.equal(comp_grad[1], torch.zeros_like(comp_grad[1]))


def test_state_dict_round_trip_both_ways() -> None:
    reference = RGCNConv(12, 4, 3, num_bases=2)
    fast = BasisFirstRGCNConv(12, 4, 3, num_bases=2)
    assert {k: v.shape for k, v in fast.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    assert sorted(fast.state_dict()) == list(PARAMS)

    fast.load_state_dict(reference.state_dict())
    for name in PARAMS:
        assert torch.equal(fast.state_dict()[name], reference.state_dict()[name])

    other_fast = BasisFirstRGCNConv(12, 4, 3, num_bases=2)
    reference.load_state_dict(other_fast.state_dict())
    for name in PARAMS:
        assert torch.equal(reference.state_dict()[name], other_fast.state_dict()[name])


def test_init_matches_pyg() -> None:
    torch.manual_seed(8)
    reference = RGCNConv(50, 16, 5, num_bases=3)
    torch.manual_seed(8)
    fast = BasisFirstRGCNConv(50, 16, 5, num_bases=3)
    for name in PARAMS:
        assert torch.equal(fast.state_dict()[name], reference.state_dict()[name])


def test_adjacency_is_cached_per_graph() -> None:
    edge_index, edge_type = random_graph(15, 3, 60, seed=9)
    conv = BasisFirstRGCNConv(15, 4, 3, num_bases=2)
    first = conv._adjacency(edge_index, edge_type)
    assert conv._adjacency(edge_index, edge_type) is first
    assert conv._adjacency(edge_index.clone(), edge_type) is not first
    edge_index[0, 0] = (edge_index[0, 0] + 1) % 15
    assert conv._adjacency(edge_index, edge_type) is not first


def test_rejects_features_and_out_of_range_nodes() -> None:
    conv = BasisFirstRGCNConv(4, 2, 2, num_bases=1)
    edge_index, edge_type = torch.tensor([[0], [1]]), torch.tensor([0])
    with pytest.raises(ValueError, match="featureless"):
        conv(torch.eye(4), edge_index, edge_type)
    with pytest.raises(ValueError, match="node 4"):
        conv(None, torch.tensor([[4], [0]]), edge_type)
    with pytest.raises(ValueError, match="block-diagonal"):
        PyGCompatibleBasisFirstRGCNConv(4, 2, 2, num_blocks=2)


@pytest.mark.parametrize("fast", [True, False])
def test_build_rgcn(fast: bool) -> None:
    module = build_rgcn(9, 5, 3, 2, fast=fast)
    assert type(module) is (BasisFirstRGCNConv if fast else RGCNConv)
    edge_index, edge_type = random_graph(9, 3, 20, seed=10)
    assert module(None, edge_index, edge_type).shape == (9, 5)
