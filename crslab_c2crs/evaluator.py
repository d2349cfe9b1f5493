"""The evaluator every model runs with here (registered as ``standard`` and ``conv``).

It is CRSLab's ``StandardEvaluator`` (hit/ndcg/mrr@1,10,50, BLEU, F1, PPL) with these changes:

* Distinct-n counts **word** n-grams (0.1.2 runs ``ngrams`` over the decoded string, i.e. characters) and is
  reported under two definitions: ``dist@n`` as CRSLab defines it (distinct n-grams / number of sentences) and
  ``dist_ratio@n`` as the C2-CRS and KGSF papers do (distinct n-grams / total n-grams, corpus level).
* The embedding metrics (greedy/average/extreme) need the multi-GB fastText ``cc.<lang>.300.bin``; when it is not
  under ``<data root>/embedding/<lang>/`` they are skipped with one warning, and nothing is downloaded.
* Recommendation is scored from the item scores (:meth:`C2CRSEvaluator.evaluate_item_scores`), with the samples
  behind each batch known (:func:`attach`). Next to CRSLab's metrics over all targets it reports the share of
  targets already mentioned in the context (``target_in_context``), the same metrics over the other, *new*
  targets (``new_hit@k``, ``new_mrr@k``, ``new_ndcg@k``), the item coverage of the top-10 lists
  (``coverage@10``: distinct recommended movies / all movies) and their mean training mention count
  (``popularity@10``). With ``rec_exclude_context: true`` the context's movies are removed from the candidates.
* Every ``report`` is kept in :attr:`history` so runners and benchmarks can read the numbers back, and with
  ``record_test`` the per-sample test predictions are kept for ``--dump-predictions``.
"""
from __future__ import annotations

import functools
import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import torch
from loguru import logger
from nltk import ngrams

import crslab.config
from crslab.evaluator.metrics.base import AverageMetric, Metrics, aggregate_unnamed_reports
from crslab.evaluator.metrics.gen import BleuMetric, EmbeddingAverage, F1Metric, GreedyMatch, VectorExtrema
from crslab.evaluator.standard import StandardEvaluator
from crslab.evaluator.utils import nice_report
from crslab_c2crs import distributed
from crslab_c2crs.data.items import ItemCatalog
from crslab_c2crs.registry import register_evaluator

DIST_ORDERS = (1, 2, 3, 4)
REC_KS = (1, 10, 50)
COVERAGE_K = 10      # coverage@10 and popularity@10 describe the top-10 lists
TOP_RECORDED = 10    # items (with scores) kept per test sample for --dump-predictions
_warned_embedding = False


def distinct_scores(sentences: List[List[str]]) -> Dict[str, float]:
    """Both Distinct-n definitions over tokenized sentences.

    Returns ``dist@n`` = |distinct n-grams| / |sentences| (CRSLab) and ``dist_ratio@n`` =
    |distinct n-grams| / |n-grams| (C2-CRS/KGSF papers), for n in 1..4; 0 where undefined.
    """
    scores = {}
    for n in DIST_ORDERS:
        grams = [gram for tokens in sentences for gram in ngrams(tokens, n)]
        distinct = len(set(grams))
        scores[f"dist@{n}"] = distinct / len(sentences) if sentences else 0.0
        scores[f"dist_ratio@{n}"] = distinct / len(grams) if grams else 0.0
    return scores


def ranking_scores(ranks: Sequence[int], label: int, prefix: str = "") -> Dict[str, float]:
    """CRSLab's hit, MRR and NDCG at 1, 10 and 50 of ``label`` in ``ranks`` (item indices, best first),
    named ``<prefix>hit@k`` etc. A list shorter than k (fewer candidates) counts as it is."""
    position = next((i for i, item in enumerate(ranks[:max(REC_KS)]) if item == label), None)
    scores = {}
    for k in REC_KS:
        found = position is not None and position < k
        scores[f"{prefix}hit@{k}"] = float(found)
        scores[f"{prefix}mrr@{k}"] = 1.0 / (position + 1) if found else 0.0
        scores[f"{prefix}ndcg@{k}"] = 1.0 / math.log2(position + 2) if found else 0.0
    return scores


def rank_items(scores: torch.Tensor, exclude: Optional[Sequence[Collection[int]]] = None,
               k: int = max(REC_KS)) -> Tuple[List[List[int]], List[List[float]]]:
    """The ``k`` best items of every row of ``scores`` ``(batch, n_items)`` and their scores, best first.

    Ties keep the lower item index first (a stable sort), so rankings with equal scores (the popularity
    baselines) are deterministic. ``exclude`` holds per row the item indices removed from the candidates.
    """
    scores = scores.detach().float().cpu()
    if exclude is not None:
        scores = scores.clone()
        for row, items in enumerate(exclude):
            scores[row, list(items)] = -math.inf
    values, indices = torch.sort(scores, dim=-1, descending=True, stable=True)
    ranks, kept_scores = [], []
    for row_items, row_values in zip(indices[:, :k].tolist(), values[:, :k].tolist()):
        # an excluded item only shows up here when fewer than k candidates are left
        kept = [(item, value) for item, value in zip(row_items, row_values) if value != -math.inf]
        ranks.append([item for item, _ in kept])
        kept_scores.append([value for _, value in kept])
    return ranks, kept_scores


@dataclass
class RecPrediction:
    """One scored recommendation sample: target item index, the target's 0-based position in the ranking (None
    below the top 50), whether the context mentioned it (None when the context is unknown) and the
    ``TOP_RECORDED`` best (item index, score)."""

    label: int
    rank: Optional[int]
    in_context: Optional[bool]
    top: List[Tuple[int, float]]


@dataclass
class GenPrediction:
    """One scored response: the generated and the reference text, both exactly as scored."""

    hypothesis: str
    reference: str


def sample_of(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """The dataset sample behind a loader entry: C2-CRS (and the shortcut baselines) wrap it as
    ``{"sample": ..., "item": ...}``; CRSLab's KGSF and KBRD loaders pass (copies of) sample dicts."""
    return entry.get("sample", entry)


class BatchSamples:
    """Which samples are behind the batches that watched data loaders hand out.

    CRSLab's batches are bare tensors (no sample ids, no raw context), and they may come in any order (length
    bucketing), so for each watched loader the ``rec``/``conv`` process functions, which list a pass's entries,
    and batch functions, which collate some of them, are wrapped: the first notes every entry's position in the
    pass, the second the (position, entry) pairs of the batch just made. ``get_data`` makes each batch right
    before the system steps on it, so the batch just made is the one being evaluated; :meth:`pop` hands its
    rows out in order.
    """

    KINDS = ("rec", "conv")

    def __init__(self) -> None:
        self._latest: Dict[str, List[Tuple[int, Mapping[str, Any]]]] = {kind: [] for kind in self.KINDS}

    def watch(self, loader: Any) -> None:
        """Wrap ``loader``'s ``<kind>_process_fn`` and ``<kind>_batchify`` (instance attributes only)."""
        for kind in self.KINDS:
            self._wrap(loader, kind)

    def _wrap(self, loader: Any, kind: str) -> None:
        process: Callable[[], List[Any]] = getattr(loader, f"{kind}_process_fn")
        batchify: Callable[[List[Any]], Any] = getattr(loader, f"{kind}_batchify")
        # the entries of the current pass are kept alive, so their ids stay unique while they are looked up
        current: Dict[str, Any] = {"entries": [], "positions": {}}

        # wraps: the batch plan (crslab_c2crs.data.batching) tells the stage, hence its caps, by the function's name
        @functools.wraps(process)
        def listing_process_fn(*args: Any, **kwargs: Any) -> List[Any]:
            entries = process(*args, **kwargs)
            current["entries"] = entries
            current["positions"] = {id(entry): position for position, entry in enumerate(entries)}
            return entries

        @functools.wraps(batchify)
        def noting_batchify(batch: List[Any]) -> Any:
            self._latest[kind] = [(current["positions"].get(id(entry), -1), entry) for entry in batch]
            return batchify(batch)

        setattr(loader, f"{kind}_process_fn", listing_process_fn)
        setattr(loader, f"{kind}_batchify", noting_batchify)

    def pop(self, kind: str) -> Tuple[int, Mapping[str, Any]]:
        """The next (position in the pass, entry) of the latest ``kind`` batch."""
        if not self._latest[kind]:
            raise RuntimeError(f"a {kind} sample was evaluated that no watched loader put in a batch; the "
                               f"evaluation and the batches are out of step")
        return self._latest[kind].pop(0)


@register_evaluator("standard")
@register_evaluator("conv")
class C2CRSEvaluator(StandardEvaluator):
    """CRSLab's standard evaluator with word-level Distinct-n (both definitions), offline embeddings and
    repeat-aware recommendation metrics (see the module docstring).

    Attributes set by :func:`attach`: ``items`` (the item catalog), ``batch_samples`` (the samples behind the
    evaluated batches), ``exclude_context`` and ``record_test``; without them the context-aware metrics,
    coverage and the records are left out and CRSLab's metrics remain.
    """

    def __init__(self, language: str, tensorboard: bool = False):
        tensorboard = tensorboard and distributed.is_main()  # under torchrun, rank 0 writes the only event file
        # StandardEvaluator.__init__ would download fastText; set its state here instead.
        self.rec_metrics = Metrics()
        self.gen_metrics = Metrics()
        self.optim_metrics = Metrics()
        self.hypotheses: List[List[str]] = []
        self.history: List[Dict[str, Any]] = []
        self.items: Optional[ItemCatalog] = None
        self.batch_samples: Optional[BatchSamples] = None
        self.exclude_context = False
        self.record_test = False
        # per pass: the items of the top-10 lists, and (position, prediction) records until the pass is reported
        self._recommended: Set[int] = set()
        self._top_mentions: List[int] = []
        self._rec_records: List[Tuple[int, RecPrediction]] = []
        self._gen_records: List[Tuple[int, GenPrediction]] = []
        # the last test pass's records, by kind, each with its position in the pass's entry list
        self.test_records: Dict[str, List[Tuple[int, Any]]] = {"rec": [], "conv": []}
        self.ft = self._load_embedding_if_present(language)
        self.tensorboard = tensorboard
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=os.path.join("runs", time.strftime("%Y-%m-%d-%H-%M-%S")))
            self.reports_name = ["Recommendation Metrics", "Generation Metrics", "Optimization Metrics"]

    @staticmethod
    def _load_embedding_if_present(language: str):
        global _warned_embedding
        model_file = os.path.join(crslab.config.EMBEDDING_PATH, language, f"cc.{language}.300.bin")
        if not os.path.exists(model_file):
            if not _warned_embedding:
                logger.warning(f"[Embedding metrics (greedy/average/extreme) skipped: {model_file} is absent; "
                               f"place fastText cc.{language}.300.bin there to enable them]")
                _warned_embedding = True
            return None
        import fasttext

        return fasttext.load_model(model_file)

    # ------------------------------------------------------------------ recommendation
    def evaluate_item_scores(self, scores: torch.Tensor, labels: Sequence[int]) -> None:
        """Rank the items of every row of ``scores`` ``(batch, n_items)`` (columns in the order of
        ``side_data['item_entity_ids']``) and score the ranking against the target item index in ``labels``
        ``(batch,)``; each row's context comes from :attr:`batch_samples` when it is set."""
        rows = [self._next_rec_sample(label) for label in labels]
        contexts = [context for _, context in rows]
        known = all(context is not None for context in contexts)
        exclude = contexts if self.exclude_context and known else None
        rankings, ranking_values = rank_items(scores, exclude)
        for (position, context), ranking, values, label in zip(rows, rankings, ranking_values, labels):
            self.rec_evaluate(ranking, label, context)
            if self.record_test:
                prediction = RecPrediction(label, ranking.index(label) if label in ranking else None,
                                           None if context is None else label in context,
                                           list(zip(ranking[:TOP_RECORDED], values[:TOP_RECORDED])))
                self._rec_records.append((position, prediction))

    def _next_rec_sample(self, label: int) -> Tuple[int, Optional[List[int]]]:
        """(position in the pass, context item indices) of the next evaluated row; (-1, None) when unknown."""
        if self.batch_samples is None or self.items is None:
            return -1, None
        position, entry = self.batch_samples.pop("rec")
        if self.items.index_of(entry["item"]) != label:
            raise RuntimeError(f"evaluated target item {label} is not the batch sample's target (entity "
                               f"{entry['item']}); the evaluation and the batches are out of step")
        return position, self.items.items_among(sample_of(entry)["context_entities"])

    def rec_evaluate(self, ranks: List[int], label: int, context: Optional[Collection[int]] = None) -> None:
        """Score one ranking ``ranks`` (item indices, best first) against the target item index ``label``.

        ``context`` holds the item indices of the movies mentioned in the sample's context (None: unknown, as
        when CRSLab's own systems call this with two arguments); then ``target_in_context`` and, for a target
        not in it, the ``new_*`` metrics are added.
        """
        for name, value in ranking_scores(ranks, label).items():
            self.rec_metrics.add(name, AverageMetric(value))
        if context is not None:
            repeated = label in context
            self.rec_metrics.add("target_in_context", AverageMetric(float(repeated)))
            if not repeated:
                for name, value in ranking_scores(ranks, label, "new_").items():
                    self.rec_metrics.add(name, AverageMetric(value))
        top = ranks[:COVERAGE_K]
        self._recommended.update(top)
        if self.items is not None:
            self._top_mentions.extend(self.items.train_mentions[item] for item in top)

    # ------------------------------------------------------------------ generation
    def gen_evaluate(self, hyp: str, refs: List[str]) -> None:
        """Score one generated sentence ``hyp`` (space-joined tokens) against reference sentences ``refs``."""
        if self.record_test and self.batch_samples is not None:
            # recorded before the empty-hypothesis return: the dump has a line for every scored turn
            position, _ = self.batch_samples.pop("conv")
            self._gen_records.append((position, GenPrediction(hyp, refs[0] if refs else "")))
        if not hyp:
            return
        self.gen_metrics.add("f1", F1Metric.compute(hyp, refs))
        with warnings.catch_warnings():
            # nltk warns on every sentence without higher-order n-gram overlaps; BLEU@k is 0 then, as intended.
            warnings.simplefilter("ignore", UserWarning)
            for k in DIST_ORDERS:
                self.gen_metrics.add(f"bleu@{k}", BleuMetric.compute(hyp, refs, k))
        self.hypotheses.append(hyp.split())
        if self.ft is not None:
            hyp_emb = [self.ft[token] for token in hyp.split()]
            ref_embs = [[self.ft[token] for token in ref.split()] for ref in refs]
            self.gen_metrics.add("greedy", GreedyMatch.compute(hyp_emb, ref_embs))
            self.gen_metrics.add("average", EmbeddingAverage.compute(hyp_emb, ref_embs))
            self.gen_metrics.add("extreme", VectorExtrema.compute(hyp_emb, ref_embs))

    # ------------------------------------------------------------------ reports
    def report(self, epoch: int = -1, mode: str = "test") -> Dict[str, float]:
        """Log the metrics gathered since the last reset, keep them in :attr:`history` and return them. Under
        ``torchrun`` they are those of every rank's share of the pass (:meth:`merge_ranks`)."""
        self.merge_ranks()
        if self.hypotheses:
            for name, value in distinct_scores(self.hypotheses).items():
                self.gen_metrics.add(name, AverageMetric(value))
        if self._recommended and self.items is not None:
            self.rec_metrics.add(f"coverage@{COVERAGE_K}",
                                 AverageMetric(len(self._recommended) / self.items.n_items))
            self.rec_metrics.add(f"popularity@{COVERAGE_K}",
                                 AverageMetric(sum(self._top_mentions) / len(self._top_mentions)))
        if mode == "test":
            for kind, records in (("rec", self._rec_records), ("conv", self._gen_records)):
                if records:
                    self.test_records[kind] = list(records)
        reports = [self.rec_metrics.report(), self.gen_metrics.report(), self.optim_metrics.report()]
        if self.tensorboard and mode != "test":
            for idx, task_report in enumerate(reports):
                for name, value in task_report.items():
                    self.writer.add_scalars(f"{self.reports_name[idx]}/{name}", {mode: value.value()}, epoch)
        merged = aggregate_unnamed_reports(reports)
        logger.info("\n" + nice_report(merged))
        values = {name: float(metric.value()) for name, metric in merged.items()}
        self.history.append({"epoch": epoch, "mode": mode, "metrics": values})
        return values

    def merge_ranks(self) -> None:
        """Under ``torchrun``, make this rank's metrics those of the whole pass, as one process would have gathered
        them: the ranks' metrics added up (sums over samples, or over the ranks' shares of each batch's loss: see
        :mod:`crslab_c2crs.distributed`), their generated sentences, top-10 lists and test records joined (records
        in the order of their positions in the pass). Every rank then reports, and decides on, the same numbers;
        the systems of KGSF and KBRD read ``rec_metrics`` and ``optim_metrics`` after the report. Does nothing in
        a single process."""
        if not distributed.active():
            return
        ranks = distributed.all_objects((self.rec_metrics, self.gen_metrics, self.optim_metrics, self.hypotheses,
                                         self._recommended, self._top_mentions, self._rec_records,
                                         self._gen_records))
        self.rec_metrics, self.gen_metrics, self.optim_metrics = (
            _added_up([state[part] for state in ranks]) for part in range(3))
        self.hypotheses = [sentence for state in ranks for sentence in state[3]]
        self._recommended = set().union(*(state[4] for state in ranks))
        self._top_mentions = [count for state in ranks for count in state[5]]
        self._rec_records, self._gen_records = (
            sorted((record for state in ranks for record in state[part]), key=lambda record: record[0])
            for part in (6, 7))

    def reset_metrics(self) -> None:
        self.rec_metrics.clear()
        self.gen_metrics.clear()
        self.optim_metrics.clear()
        self.hypotheses = []
        self._recommended = set()
        self._top_mentions = []
        self._rec_records = []
        self._gen_records = []

    def last(self, mode: str) -> Optional[Dict[str, float]]:
        """The most recent report made in ``mode`` ('train', 'val' or 'test'), if any."""
        return next((entry["metrics"] for entry in reversed(self.history) if entry["mode"] == mode), None)


def _added_up(every_rank: Sequence[Metrics]) -> Metrics:
    """One :class:`Metrics` holding, for each name, the sum of the ranks' metrics of that name (rank order)."""
    total = Metrics()
    for metrics in every_rank:
        for name, metric in metrics.report().items():
            total.add(name, metric)
    return total


def attach(system: Any, record_test: bool = False) -> None:
    """Connect ``system``'s evaluator to the run's data before it fits: the item catalog (with training
    popularity), the samples behind the validation and test batches, the ``rec_exclude_context`` option and,
    with ``record_test``, the per-sample test records for ``--dump-predictions``.

    Does nothing for a system without our evaluator (interactive mode builds none).
    """
    evaluator = getattr(system, "evaluator", None)
    if not isinstance(evaluator, C2CRSEvaluator):
        return
    evaluator.items = ItemCatalog.from_data(system.side_data["item_entity_ids"], system.train_dataloader.dataset)
    evaluator.batch_samples = BatchSamples()
    for loader in {id(loader): loader for loader in (system.valid_dataloader, system.test_dataloader)}.values():
        evaluator.batch_samples.watch(loader)
    evaluator.exclude_context = bool(system.opt.get("rec_exclude_context", False))
    evaluator.record_test = record_test
