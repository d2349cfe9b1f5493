"""Which turns are recommendation targets: the protocol switch ``rec_targets``, one owner for every model.

ReDial papers score recommendation under two protocols, and the two differ by more than the models do:

* ``recommender`` (CRSLab's, the default): the movies of **Recommender** turns. CRSLab's KGSF and KBRD loaders,
  and every figure of the KGSF paper, use it.
* ``all`` (the C2-CRS authors' code, ``rec_process_fn_given_dataset`` without a role filter): the movies of
  **every** turn that mentions one, Seeker turns included. A Seeker turn often names a movie the context already
  holds, so the shortcut "repeat the context" scores far higher there.

The key is set separately for the training samples and the evaluated (validation and test) samples::

    rec_targets: recommender                          # both
    rec_targets: {train: recommender, eval: all}      # train as CRSLab, score as the authors

Every loader (C2-CRS, KGSF, KBRD, the shortcut baselines) lists its rec entries with :func:`rec_entries`, and the
prediction dump maps entries back to turns with the same function, so under one setting every model is scored on
the same samples. A loader learns its split from the batch plan its system gives it
(:mod:`crslab_c2crs.data.batching`); a loader used outside a system counts as a training loader.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Mapping, Tuple

from crslab_c2crs.errors import ConfigError

PROTOCOLS = ("recommender", "all")
KEY = "rec_targets"
_PARTS = ("train", "eval")

Sample = Mapping[str, Any]


@dataclass(frozen=True)
class RecTargets:
    """The protocol of the training samples (``train``) and of the evaluated samples (``eval``)."""

    train: str = "recommender"
    eval: str = "recommender"

    @classmethod
    def from_opt(cls, opt: Mapping[str, Any], source: str = "the config") -> "RecTargets":
        """Read ``rec_targets`` from ``opt``: absent or null is CRSLab's protocol, a protocol name sets both parts,
        a mapping ``{train: ..., eval: ...}`` each (a missing part stays ``recommender``).

        Raises:
            ConfigError: an unknown protocol or part, naming the key and ``source``.
        """
        value = opt.get(KEY)
        if value is None:
            return cls()
        if isinstance(value, str):
            if value not in PROTOCOLS:
                raise ConfigError(f"{KEY}: unknown protocol {value!r}; choose {' or '.join(PROTOCOLS)} (in {source} "
                                  f"or with --set {KEY}=all)")
            value = {part: value for part in _PARTS}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{KEY}: {value!r} is not a protocol ({' or '.join(PROTOCOLS)}) nor a mapping "
                              f"{{train: ..., eval: ...}}; correct it in {source} or with --set {KEY}=all")
        for part, protocol in value.items():
            if part not in _PARTS:
                raise ConfigError(f"{KEY}.{part}: unknown part; {KEY} sets {' and '.join(_PARTS)} "
                                  f"(in {source} or with --set {KEY}.eval=all)")
            if protocol not in PROTOCOLS:
                raise ConfigError(f"{KEY}.{part}: unknown protocol {protocol!r}; choose {' or '.join(PROTOCOLS)} "
                                  f"(in {source} or with --set {KEY}.{part}=all)")
        return cls(**dict(value))

    def for_split(self, split: str) -> str:
        """The protocol of a data split: ``train`` -> :attr:`train`, ``valid``/``test`` -> :attr:`eval`."""
        return self.train if split == "train" else self.eval

    def describe(self) -> str:
        """``recommender`` / ``all`` when both parts agree, else ``train=..., eval=...``."""
        return self.train if self.train == self.eval else f"train={self.train}, eval={self.eval}"


def is_target_turn(sample: Sample, protocol: str) -> bool:
    """Whether the turn of ``sample`` (a CRSLab sample: ``role``, ``items``) holds targets under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return bool(sample["items"]) and (protocol == "all" or sample["role"] == "Recommender")


def rec_entries(samples: Iterable[Sample], protocol: str) -> List[Tuple[Sample, int]]:
    """``(sample, movie)`` per target movie of every target turn of ``samples``, in dataset order: the entries
    of a rec pass (one per movie, as CRSLab makes them)."""
    return [(sample, movie) for sample in samples if is_target_turn(sample, protocol) for movie in sample["items"]]


def check_rec_targets(opt: Mapping[str, Any], source: str) -> None:
    """The config check of ``rec_targets`` (every model reads it)."""
    RecTargets.from_opt(opt, source)


class RecTargetsMixin:
    """For a CRSLab data loader (``self.opt``, ``self.dataset``): the rec entries of its split's protocol."""

    opt: Mapping[str, Any]
    dataset: List[Sample]

    def rec_protocol(self) -> str:
        """The protocol of this loader's split (its batch plan's; ``train`` without one)."""
        plan = getattr(self, "batch_plan", None)
        return RecTargets.from_opt(self.opt).for_split(plan.split if plan is not None else "train")

    def rec_target_entries(self) -> List[Tuple[Sample, int]]:
        """:func:`rec_entries` of this loader's samples under :meth:`rec_protocol`."""
        return rec_entries(self.dataset, self.rec_protocol())
