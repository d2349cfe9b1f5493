"""A tiny raw ReDial folder in the layout and file formats of ``shared/data/redial``, for builder tests.

``write_tiny_raw(root)`` writes it and returns ``root``; ``python -m crslab_c2crs.data build redial --raw
<root>`` then builds a dataset CRSLab accepts: 60 movies (the systems call ``topk(..., 50)``), a "starring"
relation with 720 movie-actor edges (1440 after CRSLab doubles them, above its 1000-edge filter), Recommender
turns that mention movies in every split, a few movies without a DBpedia resource (kept in entity2id under their
raw ReDial id, like the real data), merged-message train records without ``messageId`` (like the CFCRS-sourced
ones), and the real metadata file's stray ``f`` after one record.
"""
from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Dict, List

import numpy as np

N_MOVIES = 60
N_UNLINKED = 4  # the last movies have no DBpedia resource
FIRST_MOVIE_ID = 100000
SPLITS = {"train": 24, "valid": 8, "test": 8}
RELATION_STARRING, RELATION_GENRE, RELATION_SELF = 69, 135, 185
SEEKER_ID, RECOMMENDER_ID = 11, 22

ACTORS = ["Tom_Hanks", "Meryl_Streep", "Clint_Eastwood", "Adam_Sandler", "Will_Smith", "Jim_Carrey",
          "Julia_Roberts", "Robin_Williams", "Sandra_Bullock", "Keanu_Reeves", "Emma_Stone", "Morgan_Freeman"]
GENRES = ["Horror_film", "Comedy_film", "Action_film", "Documentary_film"]
TITLES = ["Big_Fan", "The_Shining", "Space_Cowboys", "Forrest_Gump"] + [f"Tiny_Picture_{k}" for k in range(4, N_MOVIES)]
STOPWORDS = ["a", "an", "the", "i", "you", "it", "is", "and", "of", "with", "have", "will", "do", "that", "for"]
CONCEPTS = ["hi", "like", "love", "movie", "movies", "great", "funny", "scary", "watch", "good", "big", "fan",
            "seen", "have", "you", "tom", "will", "smith", "recommend", "something", "thanks"]


def uri(label: str) -> str:
    """The entity2id key of a DBpedia label."""
    return f"<http://dbpedia.org/resource/{label}>"


def movie_id(k: int) -> int:
    return FIRST_MOVIE_ID + k


def movie_key(k: int) -> str:
    """entity2id key of movie ``k``: a DBpedia resource, or the raw ReDial id for unlinked movies."""
    return str(movie_id(k)) if k >= N_MOVIES - N_UNLINKED else uri(TITLES[k])


def entity_ids() -> Dict[str, int]:
    """entity2id: movies first, then actors, genres and a few unrelated entities (ids from 1)."""
    keys = [movie_key(k) for k in range(N_MOVIES)] + [uri(a) for a in ACTORS] + [uri(g) for g in GENRES]
    keys += [uri("Theo_James"), uri("Glossary_of_tennis_terms")]
    return {key: idx for idx, key in enumerate(keys, start=1)}


def _message(sender: int, text: str, message_id: int, with_ids: bool) -> Dict:
    message = {"senderWorkerId": sender, "text": text}
    if with_ids:
        message.update({"messageId": message_id, "timeOffset": message_id % 1000})
    return message


def _conversation(rng: random.Random, conv_id: int, merged: bool) -> Dict:
    a, b, c = rng.sample(range(N_MOVIES), 3)
    actor = ACTORS[rng.randrange(len(ACTORS))].replace("_", " ")
    genre = rng.choice(["horror", "comedy", "action"])
    turns = [
        (SEEKER_ID, f"Hi! I like {genre} movies. Something with {actor.lower()} maybe?"),
        (RECOMMENDER_ID, f"Have you seen @{movie_id(a)} ? It's great."),
        (SEEKER_ID, f"I love @{movie_id(a)}"),
        (SEEKER_ID, f"I am a big fan of {actor}."),
        (RECOMMENDER_ID, f"Then watch @{movie_id(b)} or @{movie_id(c)} ."),
        (RECOMMENDER_ID, "Both are funny."),
        (SEEKER_ID, "Thanks, bye!"),
    ]
    if merged:
        # CFCRS-sourced train records: consecutive messages of one sender already joined, no messageId
        joined: List[List] = []
        for sender, text in turns:
            if joined and joined[-1][0] == sender:
                joined[-1][1] += " " + text
            else:
                joined.append([sender, text])
        turns = [(sender, text) for sender, text in joined]
    messages = [_message(sender, text, conv_id * 100 + i, not merged) for i, (sender, text) in enumerate(turns)]
    mentioned = {str(movie_id(k)): TITLES[k].replace("_", " ") + " (2000)" for k in (a, b, c)}
    record = {"movieMentions": mentioned, "respondentQuestions": {}, "messages": messages,
              "conversationId": str(conv_id), "respondentWorkerId": RECOMMENDER_ID,
              "initiatorWorkerId": SEEKER_ID, "initiatorQuestions": {}}
    if merged is not None and conv_id < 1000:
        record.update({"_source": "tiny", "_messages_merged": merged})
    return record


def _tokens_of(texts: List[str]) -> List[str]:
    from crslab_c2crs.data.tokenize import tokenize

    vocab: List[str] = []
    for text in texts:
        for token in tokenize(text):
            if token not in vocab:
                vocab.append(token)
    return vocab


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _write_jsonl(path: Path, records: List[Dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def write_tiny_raw(root: Path, seed: int = 0) -> Path:
    """Write the tiny raw ReDial layout under ``root`` (created if needed) and return ``root``."""
    root = Path(root)
    rng = random.Random(seed)
    splits = {
        # train ids < 1000 carry the derived-file keys; every other train record is message-merged
        "train": [_conversation(rng, 100 + i, merged=i % 2 == 1) for i in range(SPLITS["train"])],
        "valid": [_conversation(rng, 2000 + i, merged=None) for i in range(SPLITS["valid"])],
        "test": [_conversation(rng, 3000 + i, merged=None) for i in range(SPLITS["test"])],
    }
    _write_jsonl(root / "derived" / "train_subset_union.jsonl", splits["train"])
    _write_jsonl(root / "raw" / "valid_data.jsonl", splits["valid"])
    _write_jsonl(root / "raw" / "test_data.jsonl", splits["test"])

    entity2id = entity_ids()
    movie_entity = [entity2id[movie_key(k)] for k in range(N_MOVIES)]
    _write_json(root / "crslab_nltk" / "entity2id.json", entity2id)
    _write_json(root / "crslab_nltk" / "movie_ids.json", movie_entity)
    lines = ["movieId,movieName,nbMentions"] + [f'{movie_id(k)},"{TITLES[k].replace("_", " ")} ({1990 + k % 30})",'
                                                f"{N_MOVIES - k}" for k in range(N_MOVIES)]
    (root / "raw" / "movies_with_mentions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_json(root / "derived" / "redial_context_movie_id2crslab_entityId.json",
                {str(movie_id(k)): movie_entity[k] for k in range(N_MOVIES)})
    subkg: Dict[str, List[List[int]]] = {}
    for k, movie in enumerate(movie_entity):
        edges = [[RELATION_STARRING, entity2id[uri(actor)]] for actor in ACTORS]
        edges.append([RELATION_GENRE, entity2id[uri(GENRES[k % len(GENRES)])]])
        edges.append([RELATION_SELF, movie])
        subkg[str(movie)] = edges
    _write_json(root / "crslab_nltk" / "dbpedia_subkg.json", subkg)

    texts = [m["text"] for convs in splits.values() for conv in convs for m in conv["messages"]]
    words = _tokens_of(texts + ["The plot is scary and funny ."])
    token2id = {"__pad__": 0, "__start__": 1, "__end__": 2, "__unk__": 3}
    for word in words:
        token2id.setdefault(word, len(token2id))
    _write_json(root / "crslab_nltk" / "token2id.json", token2id)

    concepts = {word: i for i, word in enumerate(CONCEPTS, start=1)}
    _write_json(root / "kgsf" / "key2index_3rd.json", concepts)
    (root / "kgsf" / "stopwords.txt").write_text("\n".join(STOPWORDS) + "\n", encoding="utf-8")
    mask4key = np.array([1.0 if t in concepts else 0.0 for t in token2id])
    mask4movie = np.array([1.0 if t.startswith("@") else 0.0 for t in token2id])
    np.save(root / "kgsf" / "mask4key.npy", mask4key)
    np.save(root / "kgsf" / "mask4movie.npy", mask4movie)

    edges = ["RelatedTo\tlove\tlike", "RelatedTo\tmovie/n\tmovies", "Antonym\tgood\tbad",  # "bad": not a concept
             "RelatedTo\tfunny\tgreat", "IsA\tfan\tsomething"]
    (root / "conceptnet").mkdir(parents=True, exist_ok=True)
    (root / "conceptnet" / "shupeili_conceptnet_one_hop_edges.txt").write_text("\n".join(edges) + "\n",
                                                                                encoding="utf-8")

    reviews = [
        {"movieId": str(movie_id(0)), "imdb_id": "tt0000000", "source": "aclImdb/train/neg/1_3.txt", "rating": 3,
         "text": "Not my thing at all really.<br /><br />The pacing drags on and on ."},
        {"movieId": str(movie_id(0)), "imdb_id": "tt0000000", "source": "aclImdb/train/pos/2_9.txt", "rating": 9,
         "text": "A great movie with a funny cast.<br />Tom Hanks is good in it ."},
    ]
    _write_jsonl(root / "reviews" / "aclimdb_redial_reviews.jsonl", reviews)
    helpful = {str(movie_id(k)): ["This", "movie", "is", "funny", "and"] for k in range(0, N_MOVIES, 3)}
    with (root / "reviews" / "revcore_movie2tokenreview_helpful.pkl").open("wb") as handle:
        pickle.dump(helpful, handle)

    meta = {}
    for k in range(N_MOVIES - 2):  # the last two movies have no metadata
        meta[str(movie_id(k))] = {"name": TITLES[k].replace("_", " ") + " (2000)", "genre": ["comedy", "horror"],
                                  "plot": "The plot is scary. It is also funny.", "director": ["Clint Eastwood"],
                                  "writer": [], "star": ["Tom Hanks", "Emma Stone"], "imdb_id": f"tt{k:07d}"}
    text = json.dumps(meta)
    stray_after = text.index('"tt0000001"}') + len('"tt0000001"}')
    (root / "movie_meta").mkdir(parents=True, exist_ok=True)
    (root / "movie_meta" / "cfcrs_id2info.json").write_text(text[:stray_after] + "f" + text[stray_after:],
                                                           encoding="utf-8")
    return root
