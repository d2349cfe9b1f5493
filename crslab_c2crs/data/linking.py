"""Link non-``@`` entity mentions in tokenized ReDial text to DBpedia entities of CRSLab's ``entity2id``.

CRSLab's own ``entity`` annotations came from a noisy surface-form linker ("bye" -> a tennis glossary). This
linker aims at precision instead:

* candidates are the movies of ``movie_ids.json`` and the entities one KG hop away from a movie (actors,
  directors, writers, composers, studios, countries...), plus a small gazetteer of film genres;
* a name needs at least two word pieces (single words are too ambiguous: "up", "her", "it"), except genres;
* an n-gram made only of common English words (ConceptNet vocabulary, which includes many first names)
  needs a capitalized content word ("Big Fan" the film or "Chris tucker", not "a big fan of");
  n-grams must end in a non-stopword and start with one only if it is an article or capitalized;
* candidates for fuzzy matching (typos: "tom hanx") are restricted by exact look-up of one word piece and
  by piece count, then scored with rapidfuzz's normalized Indel similarity (``fuzz.ratio``, 0-100);
* the longest match wins, spans never overlap, ``@`` tokens are never part of a span and an entity already
  mentioned with ``@`` in the same utterance is not linked a second time.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple
from urllib.parse import unquote

from rapidfuzz import fuzz, process

from crslab_c2crs.data.layout import LINKER_FILE
from crslab_c2crs.data.tokenize import is_movie_token
from crslab_c2crs.errors import MissingDataError

DBPEDIA_PREFIX = "<http://dbpedia.org/resource/"
DEFAULT_THRESHOLD = 90.0
MAX_NAME_PIECES = 6
MAX_FUZZY_PIECES = 4
MIN_FUZZY_CHARS = 8
_PIECE = re.compile(r"[a-z0-9]+")
_DISAMBIGUATION = re.compile(r"_\([^)]*\)$")
_LEADING_ARTICLES = frozenset({"the", "a", "an"})

# Film genres people name in ReDial chats -> DBpedia label. Entries whose entity is absent are ignored.
GENRE_ALIASES: Dict[str, str] = {
    "horror": "Horror_film", "comedy": "Comedy_film", "comedies": "Comedy_film",
    "thriller": "Thriller_(genre)", "thrillers": "Thriller_(genre)", "action": "Action_film",
    "documentary": "Documentary_film", "documentaries": "Documentary_film",
    "romantic comedy": "Romantic_comedy", "romantic comedies": "Romantic_comedy", "rom com": "Romantic_comedy",
    "rom coms": "Romantic_comedy",
    "romcom": "Romantic_comedy", "superhero": "Superhero_film", "animated": "Animation",
    "animation": "Animation", "sci fi": "Science_fiction", "scifi": "Science_fiction",
    "science fiction": "Science_fiction", "drama": "Drama_film", "dramas": "Drama_film",
    "fantasy": "Fantasy", "musical": "Musical_film", "musicals": "Musical_film", "western": "Western_(genre)",
    "westerns": "Western_(genre)", "mystery": "Mystery_film", "crime": "Crime_film", "anime": "Anime",
    "family movie": "Family_film", "family movies": "Family_film", "teen movie": "Teen_film",
    "teen movies": "Teen_film", "psychological thriller": "Psychological_thriller",
    "black comedy": "Black_comedy", "dark comedy": "Dark_comedy", "martial arts": "Martial_arts_film",
    "indie": "Independent_film", "parody": "Parody", "satire": "Satire", "suspense": "Suspense",
    "supernatural": "Supernatural", "stop motion": "Stop_motion",
}


@dataclass(frozen=True)
class Link:
    """A linked mention: tokens ``[start, end)`` of the utterance refer to ``entity`` (an entity2id key)."""

    start: int
    end: int
    entity: str
    score: float


def pieces(text: str) -> List[str]:
    """Lower-cased, accent-free alphanumeric word pieces of ``text`` ("Samuel L. Jackson" -> samuel, l,
    jackson; "Zoë" -> zoe)."""
    folded = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode("ascii")
    return _PIECE.findall(folded)


def is_dbpedia(entity: str) -> bool:
    """True for an entity2id key that is a DBpedia resource (not a raw ReDial movie id)."""
    return entity.startswith(DBPEDIA_PREFIX) and entity.endswith(">")


def entity_label(entity: str) -> Optional[str]:
    """Readable label of a DBpedia key (``<http://dbpedia.org/resource/Tom_Hanks_(actor)>`` -> ``Tom Hanks``);
    None for keys that are not DBpedia resources (CRSLab keeps unlinked movies under their raw ReDial id)."""
    if not is_dbpedia(entity):
        return None
    label = unquote(entity[len(DBPEDIA_PREFIX):-1])
    return _DISAMBIGUATION.sub("", label).replace("_", " ")


def kg_candidates(subkg: Mapping[str, Sequence[Sequence[int]]], movie_ids: Iterable[int]) -> Dict[int, int]:
    """Candidate entity ids -> number of KG edges they share with movies (used to break name ties).

    Movies and every entity one hop from a movie are candidates: those are what people talk about in
    ReDial (cast, crew, studios, places), while the rest of entity2id is second-hop noise.
    """
    movies = set(movie_ids)
    degree: Dict[int, int] = defaultdict(int)
    for movie in movies:
        degree[movie] += 1
    for head, edges in subkg.items():
        head_id = int(head)
        for _relation, tail in edges:
            if head_id in movies:
                degree[tail] += 1
            elif tail in movies:
                degree[head_id] += 1
    return dict(degree)


class EntityLinker:
    """Precise n-gram linker over the names of the candidate entities.

    Args:
        entity2id: CRSLab ``entity2id`` ``{DBpedia key: id}``.
        candidates: ``{entity id: tie-break weight}``, e.g. from :func:`kg_candidates`.
        stopwords: lower-case stopwords; n-grams may not end with one.
        common_words: lower-case common words (ConceptNet vocabulary): all-common lower-case n-grams are skipped.
        threshold: minimum ``fuzz.ratio`` (0-100) of a fuzzy match; exact matches score 100.
    """

    def __init__(self, entity2id: Mapping[str, int], candidates: Mapping[int, int], stopwords: Set[str],
                 common_words: Set[str], threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self.stopwords = stopwords
        self.common_words = common_words
        id2entity = {idx: name for name, idx in entity2id.items()}
        best: Dict[str, Tuple[int, int, str]] = {}
        for entity_id, weight in candidates.items():
            entity = id2entity.get(entity_id)
            label = entity_label(entity) if entity else None
            if label is None:
                continue
            name = " ".join(pieces(label))
            n_pieces = name.count(" ") + 1
            if not name or n_pieces < 2 or n_pieces > MAX_NAME_PIECES:
                continue
            # ties: the entity most connected to movies wins, then the lowest id (deterministic)
            key = (-weight, entity_id, entity)
            if name not in best or key < best[name]:
                best[name] = key
        self.names: Dict[str, str] = {name: key[2] for name, key in best.items()}
        for alias, label in GENRE_ALIASES.items():
            entity = f"{DBPEDIA_PREFIX}{label}>"
            if entity in entity2id:
                self.names[alias] = entity
        self.genres = {alias for alias in GENRE_ALIASES if alias in self.names}
        # piece -> names of a given piece count containing it, to restrict fuzzy candidates
        self._block: Dict[Tuple[str, int], List[str]] = defaultdict(list)
        for name in sorted(self.names):
            name_pieces = name.split()
            for piece in set(name_pieces):
                if piece not in stopwords:
                    self._block[(piece, len(name_pieces))].append(name)

    @classmethod
    def from_dataset_dir(cls, dpath: str) -> "EntityLinker":
        """The linker the data builder used, rebuilt from a built ReDial folder (interactive mode)."""
        def load(name: str) -> Any:
            path = os.path.join(dpath, name)
            if not os.path.isfile(path):
                raise MissingDataError(f"{path} is missing: rebuild the data with "
                                       f"python -m crslab_c2crs.data build redial")
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)

        settings = load(LINKER_FILE)
        return cls(load("entity2id.json"), kg_candidates(load("dbpedia_subkg.json"), load("movie_ids.json")),
                   set(settings["stopwords"]), set(load("concept2id.json")), settings["threshold"])

    def _fuzzy(self, query: str, query_pieces: List[str]) -> Optional[Tuple[str, float]]:
        """Best-scoring name with the same piece count sharing a content piece with ``query``."""
        pool: Set[str] = set()
        for piece in set(query_pieces):
            pool.update(self._block.get((piece, len(query_pieces)), ()))
        pool -= self.genres
        if not pool:
            return None
        match = process.extractOne(query, sorted(pool), scorer=fuzz.ratio, score_cutoff=self.threshold)
        return (match[0], match[1]) if match else None

    def _acceptable(self, tokens: Sequence[str], token_pieces: List[List[str]]) -> bool:
        """Surface rules that keep common phrases out (see the module docstring)."""
        flat = [p for ps in token_pieces for p in ps]
        if flat[-1] in self.stopwords:
            return False
        # a leading stopword is fine in a title ("The Shining") or a capitalized name ("Will Smith")
        if flat[0] in self.stopwords and flat[0] not in _LEADING_ARTICLES and not tokens[0][:1].isupper():
            return False
        content = [tok for tok, ps in zip(tokens, token_pieces, strict=True)
                   if not all(p in self.stopwords for p in ps)]
        if not content:
            return False
        if all(p in self.common_words or p in self.stopwords for p in flat):
            return any(tok[:1].isupper() for tok in content)
        return True

    def link(self, tokens: Sequence[str], exclude: Iterable[str] = ()) -> List[Link]:
        """Link the entity mentions in one tokenized utterance.

        Args:
            tokens: the utterance's tokens (``@<id>`` movie tokens are skipped).
            exclude: entity keys never to link (the utterance's ``@`` movies).

        Returns:
            Non-overlapping links ordered by position.
        """
        excluded = set(exclude)
        token_pieces = [[] if is_movie_token(tok) else pieces(tok) for tok in tokens]
        links: List[Link] = []
        start = 0
        while start < len(tokens):
            found = self._longest_at(tokens, token_pieces, start, excluded)
            if found is None:
                start += 1
                continue
            links.append(found)
            start = found.end
        return links

    def _longest_at(self, tokens: Sequence[str], token_pieces: List[List[str]], start: int,
                    excluded: Set[str]) -> Optional[Link]:
        if not token_pieces[start]:
            return None
        end_limit = start
        total = 0
        while end_limit < len(tokens) and token_pieces[end_limit] and total < MAX_NAME_PIECES:
            total += len(token_pieces[end_limit])
            end_limit += 1
        for end in range(end_limit, start, -1):
            span_pieces = token_pieces[start:end]
            flat = [p for ps in span_pieces for p in ps]
            if len(flat) > MAX_NAME_PIECES:
                continue
            query = " ".join(flat)
            if query in self.genres:
                entity = self.names[query]
                if entity not in excluded:
                    return Link(start, end, entity, 100.0)
                continue
            if len(flat) < 2 or not self._acceptable(tokens[start:end], span_pieces):
                continue
            entity, score = self.names.get(query), 100.0
            # a fuzzy match must not lean on a leading article ("the James" is not Theo James)
            if (entity is None and len(flat) <= MAX_FUZZY_PIECES and len(query) >= MIN_FUZZY_CHARS
                    and flat[0] not in self.stopwords):
                match = self._fuzzy(query, flat)
                if match is not None:
                    entity, score = self.names[match[0]], match[1]
            if entity is not None and entity not in excluded:
                return Link(start, end, entity, score)
        return None
