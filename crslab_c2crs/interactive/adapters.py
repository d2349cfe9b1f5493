"""How each model recommends and replies from a :class:`ChatSession`: one adapter per model family.

Every adapter builds its batch with the model's own dataloader ``*_batchify`` from the session's sample, so the
model sees input exactly as in training, and returns item scores over ``side_data['item_entity_ids']`` and the
generated token ids.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch

from crslab_c2crs import distributed
from crslab_c2crs.data.dataset import c2crs_fields, response_word_counts, response_word_repeats
from crslab_c2crs.data.options import SampleOptions
from crslab_c2crs.interactive.session import ChatSession
from crslab_c2crs.model.c2crs.decoder import repeatable_tokens


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch


class Adapter:
    """Recommend and respond with a CRSLab system's model and its test dataloader."""

    def __init__(self, system):
        self.system = system
        self.model = distributed.bare(system.model)
        self.loader = system.test_dataloader
        self.device = system.device
        self.item_ids: List[int] = list(system.side_data["item_entity_ids"])

    def _sample(self, session: ChatSession) -> Dict[str, Any]:
        return session.crslab_sample()

    def _rec_scores(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def _generate(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def _rec_batch(self, sample: Dict[str, Any]):
        return self.loader.rec_batchify([dict(sample, item=self.item_ids[0])])

    def _conv_batch(self, sample: Dict[str, Any]):
        return self.loader.conv_batchify([sample])

    @torch.no_grad()
    def recommend(self, session: ChatSession) -> torch.Tensor:
        """Scores (n_items,) of every item for the conversation so far."""
        self.model.eval()
        return self._rec_scores(_to_device(self._rec_batch(self._sample(session)), self.device))[0].cpu()

    @torch.no_grad()
    def respond(self, session: ChatSession) -> List[int]:
        """Generated token ids of the next Recommender turn."""
        self.model.eval()
        return self._generate(_to_device(self._conv_batch(self._sample(session)), self.device))[0].tolist()


class _CRSLabAdapter(Adapter):
    """KGSF and KBRD: CRSLab's models, whose greedy loops apply the ``block_stutter`` rule when the model holds a
    ``may_repeat`` mask (:func:`crslab_c2crs.compat.stutter_masked`); the chat sets it unless ``block_stutter`` is
    ``never``. The test pass never sets it: their figures stay CRSLab's plain greedy decoding."""

    def __init__(self, system):
        super().__init__(system)
        if system.opt.get("block_stutter", "chat") != "never":
            vocab = system.vocab
            specials = {vocab[name] for name in ("pad", "start", "end", "unk") if name in vocab}
            samples, size = system.train_dataloader.dataset, len(vocab["tok2ind"])
            self.model.may_repeat = repeatable_tokens(response_word_counts(samples, size, specials),
                                                      response_word_repeats(samples, size, specials),
                                                      size).to(self.device)


class GraphOnce(torch.nn.Module):
    """A graph encoder of a CRSLab model whose input is always its whole graph: in the chat the weights are fixed, so
    its output is computed on the first call and reused (KGSF encodes two graphs in ``recommend`` and again in
    ``converse``, four passes per turn)."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.output: Any = None

    def forward(self, *args: Any) -> Any:
        if self.output is None:
            self.output = self.encoder(*args)
        return self.output


def encode_graphs_once(model: torch.nn.Module, names: Tuple[str, ...]) -> None:
    """Wrap ``model``'s graph encoders ``names`` in :class:`GraphOnce` (once)."""
    for name in names:
        encoder = getattr(model, name)
        if not isinstance(encoder, GraphOnce):
            setattr(model, name, GraphOnce(encoder))


class KGSFAdapter(_CRSLabAdapter):
    def __init__(self, system):
        super().__init__(system)
        encode_graphs_once(self.model, ("entity_encoder", "word_encoder"))

    def _rec_scores(self, batch) -> torch.Tensor:
        return self.model.recommend(batch, "test")[2][:, self.item_ids]

    def _generate(self, batch) -> torch.Tensor:
        return self.model.converse(batch, "test")


class KBRDAdapter(_CRSLabAdapter):
    """KBRD ranks with the recommender its rec test scored (:meth:`KBRDSystem.recommender`), replies with the model
    after its conv stage."""

    def __init__(self, system):
        super().__init__(system)
        self.recommender = system.recommender()
        for model in {id(m): m for m in (self.model, self.recommender)}.values():
            encode_graphs_once(model, ("kg_encoder",))

    def _rec_scores(self, batch) -> torch.Tensor:
        return self.recommender.recommend(batch, "test")[1][:, self.item_ids]

    def _generate(self, batch) -> torch.Tensor:
        return self.model.converse(batch, "test")


class C2CRSAdapter(Adapter):
    def _sample(self, session: ChatSession) -> Dict[str, Any]:
        """The live conversation as a ReDialReview sample (the same fields as the dataset's)."""
        turns = session.utterances
        sample = session.crslab_sample()
        sample.update(c2crs_fields([turn.token_ids for turn in turns], [turn.mentions for turn in turns],
                                   self.system.end_token_idx, self.system.side_data.get("entity_reviews", {}),
                                   SampleOptions.from_opt(self.system.opt)))
        return sample

    def _rec_batch(self, sample: Dict[str, Any]):
        # the C2-CRS loader batches {"sample", "item"} entries that share one sample dict
        return self.loader.rec_batchify([{"sample": sample, "item": self.item_ids[0]}])

    def _conv_batch(self, sample: Dict[str, Any]):
        return self.loader.conv_batchify([{"sample": sample}])

    def _rec_scores(self, batch) -> torch.Tensor:
        return self.model.recommend(batch, "test")[1]

    def _generate(self, batch) -> torch.Tensor:
        return self.model.converse(batch, "test", chatting=True)[1]


ADAPTERS = {"KGSF": KGSFAdapter, "KBRD": KBRDAdapter, "C2CRS": C2CRSAdapter}


def adapter_for(system) -> Adapter:
    """The adapter of ``system``'s model (by CRSLab model name)."""
    name = system.opt["model_name"]
    if name not in ADAPTERS:
        raise NotImplementedError(f"interactive mode supports {sorted(ADAPTERS)}, not {name!r}")
    return ADAPTERS[name](system)
