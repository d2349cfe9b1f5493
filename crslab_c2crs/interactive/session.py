"""The state of one chat: the conversation so far, kept like the training contexts.

Each user turn is tokenized like the ReDial training data; linked movie titles are rewritten into the
``@<movieId>`` tokens the models were trained on, other KG entities are linked as the data builder does, and the
turn is appended as a Seeker utterance. The system's reply is appended as a Recommender utterance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from nltk.tokenize.treebank import TreebankWordDetokenizer

from crslab_c2crs.data.movies import Movie
from crslab_c2crs.data.options import DEFAULTS
from crslab_c2crs.interactive.linker import MovieLinker, TitleMatch

MAX_TURN_TOKENS = DEFAULTS.context_truncate
_detokenizer = TreebankWordDetokenizer()


@dataclass
class Utterance:
    """One turn: role, tokens (``@id`` for movies), token ids and entity mentions as (start, end, entity id)."""

    role: str
    tokens: List[str]
    token_ids: List[int]
    mentions: List[Tuple[int, int, int]]
    words: List[int]

    @property
    def entities(self) -> List[int]:
        return [entity for _, _, entity in self.mentions]


@dataclass
class TurnInput:
    """What the user wrote, and what was understood of it."""

    text: str
    tokens: List[str]
    movies: List[Movie]
    entities: List[str]
    truncated: bool


@dataclass
class ChatSession:
    """Conversation state shared by every model's adapter."""

    tok2ind: Dict[str, int]
    entity2id: Dict[str, int]
    word2id: Dict[str, int]
    movie_linker: MovieLinker
    tokenize: Callable[[str], List[str]]
    link_entities: Callable[[Sequence[str]], List[Tuple[int, int, str]]]
    unk_token_idx: int = 3
    utterances: List[Utterance] = field(default_factory=list)

    def reset(self) -> None:
        self.utterances = []

    def movie_tokens(self, tokens: Sequence[str], match: TitleMatch) -> List[str]:
        """What a linked title becomes in the message: ReDial's ``@<movieId>`` placeholder token."""
        return [f"@{match.movie.movie_id}"]

    def detokenize(self, tokens: Sequence[str]) -> str:
        """A reply's tokens as text."""
        return _detokenizer.detokenize(list(tokens))

    def _utterance(self, role: str, tokens: List[str]) -> Tuple[Utterance, List[Movie], List[str]]:
        movie_matches = self.movie_linker.link(tokens)
        rewritten: List[str] = []
        mentions: List[Tuple[int, int, int]] = []
        movies: List[Movie] = []
        cursor = 0
        offsets: List[int] = []
        for match in movie_matches:
            for token in tokens[cursor:match.start]:
                offsets.append(len(rewritten))
                rewritten.append(token)
            replacement = self.movie_tokens(tokens, match)
            mentions.append((len(rewritten), len(rewritten) + len(replacement), match.movie.entity_id))
            rewritten.extend(replacement)
            movies.append(match.movie)
            cursor = match.end
        rewritten.extend(tokens[cursor:])
        entity_names = []
        for start, end, name in self.link_entities(rewritten):
            entity_id = self.entity2id.get(name)
            if entity_id is not None and not any(s < end and start < e for s, e, _ in mentions):
                mentions.append((start, end, entity_id))
                entity_names.append(name)
        mentions.sort()
        token_ids = [self.tok2ind.get(token, self.unk_token_idx) for token in rewritten]
        words = [self.word2id[token] for token in rewritten if token in self.word2id]
        return Utterance(role, rewritten, token_ids, mentions, words), movies, entity_names

    def add_user_turn(self, text: str) -> Optional[TurnInput]:
        """Append the user's message; None when it has no word at all (empty or only spaces)."""
        tokens = self.tokenize(text)
        if not tokens:
            return None
        truncated = len(tokens) > MAX_TURN_TOKENS
        # The models never see more than the last context_truncate tokens: a huge message is cut likewise.
        tokens = tokens[-MAX_TURN_TOKENS:]
        utterance, movies, entities = self._utterance("Seeker", tokens)
        self._append(utterance)
        return TurnInput(text, utterance.tokens, movies, entities, truncated)

    def add_system_turn(self, tokens: List[str]) -> None:
        if tokens:
            self._append(self._utterance("Recommender", tokens)[0])

    def _append(self, utterance: Utterance) -> None:
        # CRSLab merges consecutive utterances of one role into one turn; do the same.
        if self.utterances and self.utterances[-1].role == utterance.role:
            last = self.utterances[-1]
            shift = len(last.tokens)
            last.tokens += utterance.tokens
            last.token_ids += utterance.token_ids
            last.mentions += [(s + shift, e + shift, entity) for s, e, entity in utterance.mentions]
            last.words += utterance.words
        else:
            self.utterances.append(utterance)

    def context_entities(self) -> List[int]:
        """Entities and movies of the whole conversation, first-seen order, de-duplicated (as CRSLab)."""
        return list(dict.fromkeys(entity for utterance in self.utterances for entity in utterance.entities))

    def context_words(self) -> List[int]:
        return list(dict.fromkeys(word for utterance in self.utterances for word in utterance.words))

    def context_items(self) -> List[int]:
        movies = {movie.entity_id for movie in self.movie_linker.movies}
        return [entity for entity in self.context_entities() if entity in movies]

    def crslab_sample(self) -> Dict[str, list]:
        """The conversation as one CRSLab ReDial sample whose response is still to be generated."""
        return {
            "role": "Recommender",
            "context_tokens": [list(u.token_ids) for u in self.utterances],
            "context_entities": self.context_entities(),
            "context_words": self.context_words(),
            "context_items": self.context_items(),
            "items": [],
            "response": [],
        }
