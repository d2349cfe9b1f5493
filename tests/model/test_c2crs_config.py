"""C2CRSConfig: defaults, CRSLab/reference key aliases and validation errors."""
import pytest

import tiny_c2crs as tiny
from crslab_c2crs.errors import ConfigError
from crslab_c2crs.model.c2crs import C2CRSConfig


def _from(opt):
    return C2CRSConfig.from_opt(opt, tiny.vocab(), tiny.side_data())


def test_defaults_follow_the_paper_and_sizes_come_from_the_data():
    config = _from({})
    assert (config.token_dim, config.kg_dim, config.n_heads, config.n_layers, config.ffn_size) == (300, 128, 2, 2, 300)
    assert (config.dropout, config.attention_dropout, config.relu_dropout) == (0.1, 0.0, 0.1)
    assert (config.num_bases, config.temperature, config.coarse_lambda) == (8, 0.07, 0.2)
    assert (config.token_freq_beta, config.token_freq_gamma, config.response_truncate) == (1500.0, 0.02, 30)
    assert config.use_history and config.use_kg and config.use_review and config.fast_rgcn
    assert config.block_ngram == 0 and _from({"block_ngram": 3}).block_ngram == 3  # plain greedy unless asked
    assert (config.vocab_size, config.n_entity, config.n_relation) == (tiny.VOCAB_SIZE, tiny.N_ENTITY, 2)
    assert (config.pad_token_idx, config.start_token_idx, config.end_token_idx) == (tiny.PAD, tiny.START, tiny.END)


def test_aliases_and_own_names_are_read():
    config = _from({"token_emb_dim": 16, "kg_dim": 8, "coarse_loss_lambda": 0.5, "token_freq_th": 10, "use_kg": False})
    assert (config.token_dim, config.kg_dim, config.coarse_lambda, config.token_freq_beta) == (16, 8, 0.5, 10.0)
    assert config.use_kg is False


def test_data_sizes_cannot_be_overridden_from_the_yaml():
    assert _from({"vocab_size": 7, "n_entity": 3}).vocab_size == tiny.VOCAB_SIZE


@pytest.mark.parametrize(
    "opt, fragment",
    [
        ({"kg_activation": "gelu"}, "'kg_activation'"),
        ({"dropout": 1.5}, "'dropout'"),
        ({"temperature": 0}, "'temperature'"),
        ({"use_review": "no"}, "'use_review'"),
        ({"n_layers": 2.5}, "'n_layers'"),
        ({"token_emb_dim": 15, "n_heads": 2}, "'token_emb_dim' (= token_dim)"),
        ({"coarse_weight_th": -1}, "'coarse_weight_th' (= token_freq_gamma)"),
        ({"kg_dim": 8, "kg_emb_dim": 16}, "given twice"),
        ({"block_ngram": -1}, "'block_ngram' must be >= 0"),
        ({"stop_loss": "none"}, "'stop_loss' must be one of ('plain', 'weighted')"),
        ({"stop_rule": "maybe"}, "'stop_rule' must be one of ('stop_first', 'argmax')"),
        ({"block_stutter": "sometimes"}, "'block_stutter' must be one of ('chat', 'always', 'never')"),
        ({"mixed_precision": False}, "'mixed_precision' must be one of ('fp32', 'bf16')"),
    ],
)
def test_invalid_values_name_the_key(opt, fragment):
    with pytest.raises(ConfigError) as info:
        _from(opt)
    assert fragment in str(info.value)


def test_missing_vocab_entry_is_named():
    vocab = tiny.vocab()
    del vocab["pad_entity"]
    with pytest.raises(ConfigError, match="pad_entity"):
        C2CRSConfig.from_opt({}, vocab, tiny.side_data())
