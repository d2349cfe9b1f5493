"""Build statistics and agreement with CRSLab's own annotations (the 30-conversation valid sample)."""
from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Dict, List, Mapping, Sequence, Set

from crslab_c2crs.data.tokenize import is_movie_token

Conversation = Mapping[str, Any]


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "tp": tp, "fp": fp, "fn": fn}


def agreement(built: Mapping[str, Conversation], reference: Sequence[Conversation],
              entity_vocab: Set[str]) -> Dict[str, Any]:
    """Compare built conversations with CRSLab-format reference conversations, utterance by utterance.

    Args:
        built: built conversations by ``conv_id``.
        reference: CRSLab-format conversations (e.g. ``valid_data.sample30.json``).
        entity_vocab: entity2id keys; reference entities outside it are ignored by CRSLab at load time,
            so entity scores are also given against the reference restricted to it.

    Returns:
        Identity rates of token and movie lists, micro word F1 (multisets) and entity micro P/R/F1 (sets).
    """
    n = same_tokens = same_movies = compared_convs = 0
    words = Counter()
    entities = {"all": Counter(), "in_entity2id": Counter()}
    for conversation in reference:
        mine = built.get(str(conversation["conv_id"]))
        if mine is None or len(mine["dialog"]) != len(conversation["dialog"]):
            continue
        compared_convs += 1
        for ours, theirs in zip(mine["dialog"], conversation["dialog"], strict=True):
            n += 1
            same_tokens += ours["text"] == theirs["text"]
            same_movies += ours["movies"] == theirs["movies"]
            a, b = Counter(ours["word"]), Counter(theirs["word"])
            words["tp"] += sum((a & b).values())
            words["fp"] += sum((a - b).values())
            words["fn"] += sum((b - a).values())
            mine_set = set(ours["entity"])
            for key, ref in (("all", set(theirs["entity"])), ("in_entity2id", set(theirs["entity"]) & entity_vocab)):
                entities[key]["tp"] += len(mine_set & ref)
                entities[key]["fp"] += len(mine_set - ref)
                entities[key]["fn"] += len(ref - mine_set)
    return {
        "conversations": compared_convs,
        "utterances": n,
        "token_list_identical": _ratio(same_tokens, n),
        "movie_list_identical": _ratio(same_movies, n),
        "word_f1": _prf(words["tp"], words["fp"], words["fn"])["f1"],
        "entity_vs_reference": _prf(**entities["all"]),
        "entity_vs_reference_in_entity2id": _prf(**entities["in_entity2id"]),
    }


def _crslab_samples(dialog: Sequence[Mapping[str, Any]]) -> int:
    """Samples CRSLab makes from one conversation: one per same-role-merged turn but the first."""
    turns = sum(1 for i, utt in enumerate(dialog) if i == 0 or utt["role"] != dialog[i - 1]["role"])
    return max(turns - 1, 0)


def split_stats(conversations: Sequence[Conversation]) -> Dict[str, Any]:
    """Counts and per-utterance means of one split."""
    utterances = [utt for conv in conversations for utt in conv["dialog"]]
    at_tokens = sum(1 for utt in utterances for tok in utt["text"] if is_movie_token(tok))
    linked = sum(len(utt["movies"]) for utt in utterances)
    count = len(utterances)
    return {
        "conversations": len(conversations),
        "utterances": count,
        "samples": sum(_crslab_samples(conv["dialog"]) for conv in conversations),
        "at_mentions": at_tokens,
        "at_mentions_linked_to_dbpedia": _ratio(linked, at_tokens),
        "entities_per_utterance": round(sum(len(u["entity"]) for u in utterances) / count, 4) if count else 0.0,
        "movies_per_utterance": round(linked / count, 4) if count else 0.0,
        "words_per_utterance": round(sum(len(u["word"]) for u in utterances) / count, 4) if count else 0.0,
        "tokens_per_utterance": round(sum(len(u["text"]) for u in utterances) / count, 4) if count else 0.0,
    }


def review_stats(corpus: Mapping[str, Any], movie_ids: Sequence[int],
                 mentioned: Counter) -> Dict[str, Any]:
    """Coverage of the review corpus over all movies, over mentioned movies and over mention occurrences.

    Args:
        corpus: the review corpus document.
        movie_ids: CRSLab item entity ids.
        mentioned: entity id -> number of ``@`` mentions in all splits.
    """
    covered = {int(k) for k in corpus["entities"]}
    counts = [len(v) for v in corpus["entities"].values()]
    sources = Counter(s["source"] for v in corpus["entities"].values() for s in v)
    first = Counter(v[0]["source"] for v in corpus["entities"].values())
    return {
        "movies_with_sentences_of_movie_ids": _ratio(len(covered & set(movie_ids)), len(set(movie_ids))),
        "mentioned_movies_with_sentences": _ratio(len(covered & set(mentioned)), len(mentioned)),
        "mentions_with_sentences": _ratio(sum(c for e, c in mentioned.items() if e in covered),
                                          sum(mentioned.values())),
        "sentences_per_movie_mean": round(statistics.mean(counts), 2) if counts else 0.0,
        "sentences_per_movie_median": statistics.median(counts) if counts else 0,
        "sentences_by_source": dict(sorted(sources.items())),
        "top_sentence_source": dict(sorted(first.items())),
    }


def format_table(stats: Mapping[str, Any]) -> str:
    """A plain-text table of the main figures, for the terminal."""
    lines: List[str] = []
    splits = stats["splits"]
    keys = ["conversations", "utterances", "samples", "at_mentions", "at_mentions_linked_to_dbpedia",
            "entities_per_utterance", "movies_per_utterance", "words_per_utterance"]
    names = list(splits)
    lines.append(f"{'split statistic':<32}" + "".join(f"{name:>12}" for name in names))
    for key in keys:
        lines.append(f"{key:<32}" + "".join(f"{splits[name][key]:>12}" for name in names))
    lines.append("")
    for key, value in stats["reviews"].items():
        lines.append(f"{'reviews.' + key:<44} {value}")
    agreement_stats = stats.get("agreement")
    if agreement_stats:
        lines.append("")
        for key in ("conversations", "utterances", "token_list_identical", "movie_list_identical", "word_f1"):
            lines.append(f"{'agreement.' + key:<44} {agreement_stats[key]}")
        for key in ("entity_vs_reference", "entity_vs_reference_in_entity2id"):
            prf = agreement_stats[key]
            lines.append(f"{'agreement.' + key:<44} P {prf['precision']}  R {prf['recall']}  F1 {prf['f1']}")
    lines.append("")
    lines.append(f"{'build seconds':<44} {stats.get('build_seconds')}")
    return "\n".join(lines)
