"""Agreement with CRSLab's own annotations on the real 30-conversation valid sample (skipped without data)."""
from pathlib import Path

import pytest

from crslab_c2crs.data.builder.dialogs import DialogVocab, convert_conversation
from crslab_c2crs.data.builder.sources import RawLayout, iter_jsonl, read_json
from crslab_c2crs.data.builder.stats import agreement
from crslab_c2crs.data.linking import EntityLinker, kg_candidates

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RAW = SHARED_DATA / "redial"

pytestmark = pytest.mark.skipif(not (RAW / "crslab_nltk" / "valid_data.sample30.json").is_file(),
                                reason=f"real ReDial data not found under {SHARED_DATA}")


def test_agreement_with_crslab_sample():
    layout = RawLayout(RAW)
    entity2id = read_json(layout.entity2id)
    concept2id = read_json(layout.concept2id)
    linker = EntityLinker(entity2id, kg_candidates(read_json(layout.dbpedia_subkg), read_json(layout.movie_ids)),
                          set(layout.stopwords.read_text().split()), set(concept2id))
    vocab = DialogVocab(read_json(layout.movie2entity), {v: k for k, v in entity2id.items()}, entity2id, concept2id)
    sample = read_json(layout.sample)
    wanted = {conv["conv_id"] for conv in sample}
    built = {}
    for lineno, record in iter_jsonl(layout.split("valid")):
        if str(record["conversationId"]) in wanted:
            conversation, _mentions = convert_conversation(record, vocab, linker, layout.split("valid"), lineno)
            built[conversation["conv_id"]] = conversation
    figures = agreement(built, sample, set(entity2id))
    assert figures["conversations"] == 30
    assert figures["token_list_identical"] >= 0.98
    assert figures["movie_list_identical"] >= 0.99
    assert figures["word_f1"] >= 0.9
    # CRSLab's own entity links are noisy; ours should mostly be a subset of the plausible ones
    assert figures["entity_vs_reference_in_entity2id"]["recall"] >= 0.5
