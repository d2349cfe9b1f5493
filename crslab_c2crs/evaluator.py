"""The evaluator every model runs with here (registered as ``standard`` and ``conv``).

It is CRSLab's ``StandardEvaluator`` (hit/ndcg/mrr@1,10,50, BLEU, F1, PPL) with three changes:

* Distinct-n counts **word** n-grams (0.1.2 runs ``ngrams`` over the decoded string, i.e. characters) and is
  reported under two definitions: ``dist@n`` as CRSLab defines it (distinct n-grams / number of sentences) and
  ``dist_ratio@n`` as the C2-CRS and KGSF papers do (distinct n-grams / total n-grams, corpus level).
* The embedding metrics (greedy/average/extreme) need the multi-GB fastText ``cc.<lang>.300.bin``; when it is not
  under ``<data root>/embedding/<lang>/`` they are skipped with one warning, and nothing is downloaded.
* Every ``report`` is kept in :attr:`history` so runners and benchmarks can read the numbers back.
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Any, Dict, List, Optional

from loguru import logger
from nltk import ngrams

import crslab.config
from crslab.evaluator.metrics.base import AverageMetric, Metrics, aggregate_unnamed_reports
from crslab.evaluator.metrics.gen import (BleuMetric, EmbeddingAverage, F1Metric, GreedyMatch,
                                          VectorExtrema)
from crslab.evaluator.standard import StandardEvaluator
from crslab.evaluator.utils import nice_report

DIST_ORDERS = (1, 2, 3, 4)
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


class C2CRSEvaluator(StandardEvaluator):
    """CRSLab's standard evaluator with word-level Distinct-n (both definitions) and offline embeddings."""

    def __init__(self, language: str, tensorboard: bool = False):
        # StandardEvaluator.__init__ would download fastText; set its state here instead.
        self.rec_metrics = Metrics()
        self.gen_metrics = Metrics()
        self.optim_metrics = Metrics()
        self.hypotheses: List[List[str]] = []
        self.history: List[Dict[str, Any]] = []
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

    def gen_evaluate(self, hyp: str, refs: List[str]) -> None:
        """Score one generated sentence ``hyp`` (space-joined tokens) against reference sentences ``refs``."""
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

    def report(self, epoch: int = -1, mode: str = "test") -> Dict[str, float]:
        """Log the metrics gathered since the last reset, keep them in :attr:`history` and return them."""
        if self.hypotheses:
            for name, value in distinct_scores(self.hypotheses).items():
                self.gen_metrics.add(name, AverageMetric(value))
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

    def reset_metrics(self) -> None:
        self.rec_metrics.clear()
        self.gen_metrics.clear()
        self.optim_metrics.clear()
        self.hypotheses = []

    def last(self, mode: str) -> Optional[Dict[str, float]]:
        """The most recent report made in ``mode`` ('train', 'val' or 'test'), if any."""
        return next((entry["metrics"] for entry in reversed(self.history) if entry["mode"] == mode), None)

