"""Learnability probes on a fixed subset of the real ReDial training data: does each C2-CRS stage learn, how fast?

Usage::

    python -m bench.learnability --stage coarse|fine|rec|conv [--samples 512] [--batch 64] [--steps 80]
        [--set key=value ...] [--before] [--label NAME] [--data-root data] [--out bench/results/learnability]
    python -m bench.learnability --compare A.json B.json ... --plot curves.png

The first ``--samples`` Recommender turns of the training split (dataset order) are cut into fixed batches
(length-bucketed, the same every run) and trained on cyclically with the paper's optimiser (Adam 1e-3, gradient
clip 0.1), one thread, seed 0, the full-size model of ``config/c2crs/redial.yaml`` plus ``--set`` overrides.
Reported per step: the loss and, for pre-training, each InfoNCE term against its chance value ln(2n - 1)
(the symmetric NT-Xent over n pairs with uniform similarities). After a conv probe the training responses are
decoded greedily: the share of rows that emit END, the share of generated tokens that repeat an earlier token of
the same response (the references' share is given beside it), and exact matches. Writes ``<label>.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

from bench.redial import CONFIGS, RESULTS, ROOT, require_built_data


def update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One training update from ``loss``: backward, clipping at 0.1 (every stage of the config clips so), step."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    optimizer.step()


def repeat_share(rows: List[List[int]]) -> float:
    """Share of tokens that already occurred earlier in their row."""
    repeats = total = 0
    for row in rows:
        seen = set()
        for token in row:
            repeats += token in seen
            seen.add(token)
            total += 1
    return repeats / total if total else 0.0


def coarse_pairs(batch: Dict[str, torch.Tensor]) -> Dict[str, int]:
    """Rows of each coarse pair term (rows without KG entities or reviews are dropped from pairs with that view)."""
    kg = batch["context_entities"].ne(0).any(dim=1)
    review = torch.zeros_like(kg)
    review[batch["review_row"]] = True
    return {"n/history-kg": int(kg.sum()), "n/history-review": int(review.sum()),
            "n/kg-review": int((kg & review).sum())}


def chance_ratio(entry: Dict[str, Any]) -> float:
    """A pre-training step's summed InfoNCE terms over their summed chance values ln(2n - 1)."""
    loss = chance = 0.0
    for pair in ("history-kg", "history-review", "kg-review"):
        n = entry[f"n/{pair}"]
        if n > 1:
            loss += entry[f"coarse/{pair}"]
            chance += math.log(2 * n - 1)
    return loss / chance if chance else float("nan")


def compare(paths: List[str], plot: str | None) -> None:
    """Print, and plot, the 8-step mean of loss / chance of pre-training probes, and when it falls below 0.9."""
    curves = {}
    for path in paths:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        ratios = [chance_ratio(entry) for entry in report["history"]]
        mean = [sum(ratios[max(0, i - 7):i + 1]) / len(ratios[max(0, i - 7):i + 1]) for i in range(len(ratios))]
        first = next((i for i, value in enumerate(mean) if i >= 7 and value < 0.9), None)
        label = Path(path).stem
        curves[label] = mean
        print(f"{label}: 8-step mean of loss/chance below 0.9 from step {first}; final {mean[-1]:.3f}")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axis = plt.subplots(figsize=(6, 4))
        for label, mean in curves.items():
            axis.plot(range(len(mean)), mean, label=label)
        axis.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
        axis.set(xlabel="training step (batch 64)", ylabel="coarse loss / chance (8-step mean)",
                 title="Coarse pre-training on 512 real samples")
        axis.grid(alpha=0.3)
        axis.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        plt.close(fig)


def until_end(row: List[int], end: int, pad: int) -> List[int]:
    out = []
    for token in row:
        if token in (end, pad):
            break
        out.append(token)
    return out


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("coarse", "fine", "rec", "conv"))
    parser.add_argument("--compare", nargs="+", metavar="JSON", help="summarise pre-training probes instead")
    parser.add_argument("--plot", default=None, help="with --compare: write their curves to this PNG")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--before", action="store_true",
                        help="the decoder's inputs before the model-defects fix: token frequencies over all "
                             "responses with one END each, and no copy mask")
    parser.add_argument("--label", default=None)
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--out", default=str(RESULTS / "learnability"))
    args = parser.parse_args(argv)
    if args.compare:
        compare(args.compare, args.plot)
        return 0
    if args.stage is None:
        parser.error("--stage is required (or --compare)")
    require_built_data(parser, args.data_root)

    import crslab_c2crs  # noqa: F401  (applies the CRSLab patches)
    from crslab_c2crs.compat import relocate
    from crslab_c2crs.config import load_config
    from crslab_c2crs.data.batching import bucketed_batches
    from crslab_c2crs.data.dataloader import C2CRSDataLoader
    from crslab_c2crs.data.dataset import ReDialReviewDataset
    from crslab_c2crs.model.c2crs import C2CRSModel
    from crslab_c2crs.reproducibility import seed_everything

    relocate(Path(args.data_root).resolve())
    opt = load_config(ROOT / CONFIGS["C2CRS"], args.overrides)
    dataset = ReDialReviewDataset(opt, "nltk")
    vocab, side_data = dataset.vocab, dict(dataset.side_data)
    if args.before:
        from collections import Counter

        counts: Counter = Counter()
        for sample in dataset.train_data:
            counts.update(sample["response"])
            counts[vocab["end"]] += 1
        side_data["token_freq"] = [counts.get(i, 0) for i in range(vocab["vocab_size"])]
        side_data.pop("copy_mask")
    loader = C2CRSDataLoader(opt, dataset.train_data, vocab)
    if args.stage == "rec":
        entries = loader.rec_process_fn()[: args.samples]
        collate = loader.rec_batchify
    else:
        entries = [{"sample": s} for s in loader.recommender_turns()[: args.samples]]
        collate = loader.conv_batchify if args.stage == "conv" else loader.pretrain_batchify
    batches = [collate([entries[i] for i in index]) for index in bucketed_batches(
        [len(e["sample"]["context_seq"]) for e in entries], args.batch, shuffle=False, pool_batches=10**6)]

    seed_everything(0, args.threads)
    model = C2CRSModel(opt, torch.device("cpu"), vocab, side_data)
    if args.stage == "conv":
        model.freeze(opt.get("conv_freeze", ["kg", "history"]) or [])
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history: List[Dict[str, float]] = []
    started = time.time()
    for step in range(args.steps):
        batch = batches[step % len(batches)]
        if args.stage in ("coarse", "fine"):
            loss, parts = model.pretrain(batch, args.stage)
        elif args.stage == "rec":
            loss, _ = model.recommend(batch, "train")
            parts = {"loss": float(loss)}
        else:
            loss, _ = model.converse(batch, "train")
            parts = {"loss": float(loss)}
        update(model, optimizer, loss)
        parts["step"] = step
        parts["rows"] = int(batch["context"].shape[0])
        if args.stage in ("coarse", "fine"):
            parts.update(coarse_pairs(batch))
        history.append(parts)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in parts.items()}), flush=True)

    report: Dict[str, Any] = {"stage": args.stage, "before": args.before, "samples": len(entries),
                              "batch": args.batch,
                              "steps": args.steps, "overrides": args.overrides, "threads": args.threads,
                              "seconds": time.time() - started, "history": history}
    if args.stage in ("coarse", "fine"):
        report["chance_per_term"] = math.log(2 * args.batch - 1)
    model.eval()
    with torch.no_grad():
        if args.stage == "rec":
            hits = total = 0
            for batch in batches:
                _, scores = model.recommend(batch, "test")
                top = scores.argmax(dim=-1)
                hits += int((top == model.recommender.item_index(batch["item"])).sum())
                total += int(batch["item"].shape[0])
            report["train_recall@1"] = hits / total
        if args.stage == "conv":
            end, pad = vocab["end"], vocab["pad"]
            generated, references = [], []
            for batch in batches:
                _, out = model.converse(batch, "test")
                generated += out.tolist()
                references += batch["response"][:, 1:].tolist()
            hyps = [until_end(row, end, pad) for row in generated]
            refs = [until_end(row, end, pad) for row in references]
            report.update(
                end_rate=sum(end in row for row in generated) / len(generated),
                repeat_share=repeat_share(hyps), reference_repeat_share=repeat_share(refs),
                exact_match=sum(h == r for h, r in zip(hyps, refs)) / len(refs),
                token_recall=sum(len(set(h) & set(r)) for h, r in zip(hyps, refs))
                / max(1, sum(len(set(r)) for r in refs)),
                examples=[" ".join(vocab["ind2tok"][t] for t in row) for row in hyps[:5]])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    label = args.label or args.stage
    (out / f"{label}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    summary = {k: v for k, v in report.items() if k not in ("history",)}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
