"""Seeding: the same seed gives bit-identical gradients where torch's default CPU kernels would not."""
import torch

from crslab_c2crs.reproducibility import seed_everything


def _gradients_of_repeated_indexing(repeats: int = 5) -> list:
    """The backward of ``nodes[ids]`` with many duplicate ids, large enough (>= 32768 elements) for torch to
    accumulate it in parallel, as a model's KG node lookups are."""
    generator = torch.Generator().manual_seed(0)
    nodes = torch.randn(500, 128, generator=generator, requires_grad=True)
    ids = torch.randint(0, 50, (256, 40), generator=generator)
    upstream = torch.randn(256, 40, 128, generator=generator)
    grads = []
    for _ in range(repeats):
        nodes.grad = None
        (nodes[ids] * upstream).sum().backward()
        grads.append(nodes.grad.clone())
    return grads


def test_seeded_runs_accumulate_indexing_gradients_in_a_fixed_order():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        seed_everything(0, num_threads=2)
        assert torch.are_deterministic_algorithms_enabled()
        first, *others = _gradients_of_repeated_indexing()
        assert all(torch.equal(first, other) for other in others)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill
