"""The ReDial movie table: ReDial movie id, CRSLab entity id, title and year.

Written by the data builder as ``movies.json`` beside CRSLab's ReDial files (most-mentioned first) and read by
interactive mode to link titles and to show recommendations as titles.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

from crslab_c2crs.data.layout import MOVIES_FILE
from crslab_c2crs.errors import MissingDataError

TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


@dataclass(frozen=True)
class Movie:
    """One ReDial movie: its ReDial id, its CRSLab entity id and its title (year may be None)."""

    movie_id: int
    entity_id: int
    title: str
    year: Optional[int]

    @property
    def display(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title

    def same_movie(self, other: "Movie") -> bool:
        """Whether ``other`` is this movie under another ReDial id: ReDial lists some titles twice, once with and
        once without a year ("Scary Movie (2000)" and "Scary Movie"), so equal titles are one movie unless both
        years are known and differ (remakes: "It (1990)", "It (2017)")."""
        return title_key(self.title) == title_key(other.title) and (
            self.year is None or other.year is None or self.year == other.year)


def title_key(text: str) -> str:
    """A title or text compared without case and punctuation: ``"Ocean's Eleven!"`` -> ``"ocean s eleven"``."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def split_title(name: str) -> Tuple[str, Optional[int]]:
    """``'Headhunter  (2009)'`` -> ``('Headhunter', 2009)``."""
    match = TITLE_YEAR.match(name.strip())
    if match:
        return " ".join(match.group(1).split()), int(match.group(2))
    return " ".join(name.split()), None


def read_movie_csv(path: str, movie_to_entity: Dict[str, int]) -> List[Movie]:
    """Movies of ReDial's ``movies_with_mentions.csv`` that have an entity, most-mentioned first."""
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            entity = movie_to_entity.get(row["movieId"])
            if entity is not None:
                title, year = split_title(row["movieName"])
                rows.append((-int(row.get("nbMentions") or 0), Movie(int(row["movieId"]), entity, title, year)))
    rows.sort(key=lambda pair: (pair[0], pair[1].movie_id))
    return [movie for _, movie in rows]


def movie_records(movies: List[Movie]) -> List[dict]:
    """The JSON form of ``movies.json``."""
    return [asdict(movie) for movie in movies]


def write_movies(dpath: str, movies: List[Movie]) -> None:
    with open(os.path.join(dpath, MOVIES_FILE), "w", encoding="utf-8") as handle:
        json.dump(movie_records(movies), handle, ensure_ascii=False)


def load_movies(dpath: str) -> List[Movie]:
    path = os.path.join(dpath, MOVIES_FILE)
    if not os.path.exists(path):
        raise MissingDataError(f"{path} is missing: rebuild the data with python -m crslab_c2crs.data build redial")
    with open(path, encoding="utf-8") as handle:
        return [Movie(**record) for record in json.load(handle)]
