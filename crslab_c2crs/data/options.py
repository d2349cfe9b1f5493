"""How C2-CRS samples are cut: the options that the dataset, the dataloader, the model and the chat read, with
their one set of defaults (the paper's ReDial settings, section 5.1.4)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class SampleOptions:
    """The sample options of a run (config keys of the same names).

    Attributes:
        context_truncate: context token ids kept, the most recent ones.
        response_truncate: response length with START and END in training; the longest generated response.
        review_entity_limit: most recently mentioned context entities whose review sentences are used.
        nb_review: top-ranked review sentences per entity.
        info_truncate: token ids kept per review sentence.
    """

    context_truncate: int = 256
    response_truncate: int = 30
    review_entity_limit: int = 8
    nb_review: int = 1
    info_truncate: int = 40

    @classmethod
    def from_opt(cls, opt: Mapping[str, Any]) -> "SampleOptions":
        """The options set in ``opt`` (CRSLab's ``Config`` or a dict); missing or null ones take the defaults."""
        return cls(**{field.name: int(opt.get(field.name)) for field in dataclasses.fields(cls)
                      if opt.get(field.name) is not None})


DEFAULTS = SampleOptions()
