"""Benchmark PyG ``RGCNConv`` against ``BasisFirstRGCNConv`` on ReDial's DBpedia KG.

Usage: ``python -m bench.rgcn --data /work/shared/data/redial/crslab_nltk``

Builds the entity KG exactly like CRSLab's ``ReDialDataset._entity_kg_process``
and times one forward+backward of each layer (same state_dict), reporting the
median over repeats, peak RSS and the largest output/gradient differences,
both between the layers and against a float64 evaluation.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from loguru import logger
from torch import Tensor, nn
from torch_geometric.nn import RGCNConv

from crslab_c2crs.model.rgcn import BasisFirstRGCNConv

SELF_LOOP_ID = 185
MIN_RELATION_EDGES = 1000
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "rgcn.json"


def load_entity_kg(data_dir: Path) -> tuple[Tensor, Tensor, int, int]:
    """Return ``(edge_index (2, E), edge_type (E,), n_entity, n_relation)`` as CRSLab builds them."""
    entity2id = json.loads((data_dir / "entity2id.json").read_text(encoding="utf-8"))
    entity_kg = json.loads(
        (data_dir / "dbpedia_subkg.json").read_text(encoding="utf-8")
    )
    n_entity = max(entity2id.values()) + 1

    edge_list = []
    for entity in range(n_entity):
        if str(entity) not in entity_kg:
            continue
        edge_list.append((entity, entity, SELF_LOOP_ID))
        for relation, tail in entity_kg[str(entity)]:
            if entity != tail and relation != SELF_LOOP_ID:
                edge_list.append((entity, tail, relation))
                edge_list.append((tail, entity, relation))

    relation_cnt: dict[int, int] = defaultdict(int)
    for _, _, relation in edge_list:
        relation_cnt[relation] += 1
    relation2id: dict[int, int] = {}
    edges = set()
    for head, tail, relation in edge_list:
        if relation_cnt[relation] > MIN_RELATION_EDGES:
            relation2id.setdefault(relation, len(relation2id))
            edges.add((head, tail, relation2id[relation]))

    # Same conversion as crslab.model.utils.functions.edge_to_pyg_format(edges, 'RGCN').
    edge_sets = torch.as_tensor(list(edges), dtype=torch.long)
    return edge_sets[:, :2].t(), edge_sets[:, 2], n_entity, len(relation2id)


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 / 2**20 if platform.system() == "Darwin" else 1 / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def time_layer(
    layer: nn.Module,
    edge_index: Tensor,
    edge_type: Tensor,
    grad_out: Tensor,
    repeats: int,
) -> tuple[list[float], Tensor, list[Tensor]]:
    """Time ``repeats`` forward+backward passes; return times, last output and grads."""
    times = []
    for _ in range(repeats):
        layer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        out = layer(None, edge_index, edge_type)
        out.backward(grad_out)
        times.append(time.perf_counter() - start)
    grads = [p.grad for _, p in sorted(layer.named_parameters())]
    return times, out.detach(), grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="CRSLab ReDial data dir"
    )
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--num-bases", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    edge_index, edge_type, n_entity, n_relation = load_entity_kg(args.data)
    logger.info(
        f"KG: {n_entity} entities, {edge_index.size(1)} edges, {n_relation} relations"
    )

    fast = BasisFirstRGCNConv(n_entity, args.dim, n_relation, num_bases=args.num_bases)
    pyg = RGCNConv(n_entity, args.dim, n_relation, num_bases=args.num_bases)
    pyg.load_state_dict(fast.state_dict())
    grad_out = torch.randn(n_entity, args.dim)

    # Fast layer first so its peak RSS is not masked by PyG's larger one.
    fast_times, fast_out, fast_grads = time_layer(
        fast, edge_index, edge_type, grad_out, args.repeats
    )
    fast_rss = peak_rss_mib()
    logger.info(
        f"fast: {[round(t, 3) for t in fast_times]} s, peak RSS {fast_rss:.0f} MiB"
    )
    pyg_times, pyg_out, pyg_grads = time_layer(
        pyg, edge_index, edge_type, grad_out, args.repeats
    )
    pyg_rss = peak_rss_mib()
    logger.info(
        f"pyg:  {[round(t, 3) for t in pyg_times]} s, peak RSS {pyg_rss:.0f} MiB"
    )

    # Float32 sums in a different order differ by rounding, so both layers
    # are also compared with a float64 evaluation (of the fast layer, which
    # the tests show equals PyG's to ~1e-15 in float64) to see whose error
    # the difference is.
    exact = BasisFirstRGCNConv(
        n_entity, args.dim, n_relation, num_bases=args.num_bases
    ).double()
    exact.load_state_dict(fast.state_dict())
    _, exact_out, exact_grads = time_layer(
        exact, edge_index, edge_type, grad_out.double(), 1
    )

    names = ["out", *(f"grad {name}" for name, _ in sorted(fast.named_parameters()))]
    exact_values = [exact_out, *exact_grads]
    fast_values = [fast_out, *fast_grads]
    pyg_values = [pyg_out, *pyg_grads]

    def max_abs(a: Tensor, b: Tensor) -> float:
        return (a.double() - b.double()).abs().max().item()

    accuracy = {
        name: {
            "max_abs_value": e.abs().max().item(),
            "max_abs_diff_fast_vs_pyg": max_abs(f, p),
            "max_abs_err_fast_vs_float64": max_abs(f, e),
            "max_abs_err_pyg_vs_float64": max_abs(p, e),
        }
        for name, e, f, p in zip(names, exact_values, fast_values, pyg_values)
    }
    pyg_median = statistics.median(pyg_times)
    fast_median = statistics.median(fast_times)
    result = {
        "n_entity": n_entity,
        "n_edges": edge_index.size(1),
        "n_relation": n_relation,
        "dim": args.dim,
        "num_bases": args.num_bases,
        "repeats": args.repeats,
        "threads": args.threads,
        "torch": torch.__version__,
        "pyg_seconds": pyg_times,
        "fast_seconds": fast_times,
        "pyg_median_s": pyg_median,
        "fast_median_s": fast_median,
        "speedup": pyg_median / fast_median,
        "fast_first_call_s": fast_times[0],
        "peak_rss_mib_after_fast": fast_rss,
        "peak_rss_mib_after_pyg": pyg_rss,
        "accuracy": accuracy,
    }

    print(f"{'layer':<8}{'fwd+bwd median s':>18}{'peak RSS MiB':>14}")
    print(f"{'PyG':<8}{pyg_median:>18.3f}{pyg_rss:>14.0f}")
    print(f"{'fast':<8}{fast_median:>18.3f}{fast_rss:>14.0f}")
    print(
        f"speed-up {result['speedup']:.1f}x (fast first call incl. adjacency build: "
        f"{fast_times[0]:.3f} s)"
    )
    print(
        f"{'tensor':<14}{'max|value|':>12}{'|fast-PyG|':>12}{'fast err':>12}{'PyG err':>12}"
        "   (err = vs float64)"
    )
    for name, row in accuracy.items():
        print(
            f"{name:<14}{row['max_abs_value']:>12.3g}{row['max_abs_diff_fast_vs_pyg']:>12.2e}"
            f"{row['max_abs_err_fast_vs_float64']:>12.2e}{row['max_abs_err_pyg_vs_float64']:>12.2e}"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    logger.info(f"wrote {args.out}")


if __name__ == "__main__":
    main()
