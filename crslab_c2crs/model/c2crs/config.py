"""C2-CRS's configuration, in one place: the model's typed, validated hyper-parameters (:class:`C2CRSConfig`,
a Hugging Face style configuration object), the stages and ablations the system runs, every config key a C2-CRS
run reads (declared to :func:`crslab_c2crs.config.register_config_keys`) and the check of their values that runs
before any data is loaded (:func:`check_c2crs_options`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from crslab_c2crs.config import bad_value, choice_error, register_config_check, register_config_keys
from crslab_c2crs.data.options import DEFAULTS, SampleOptions
from crslab_c2crs.data.pretrain_views import PretrainViews, check_pretrain_views
from crslab_c2crs.errors import ConfigError

# CRSLab / reference spellings of our option names; both are accepted in the YAML.
OPT_ALIASES: Mapping[str, str] = {
    "token_emb_dim": "token_dim",
    "kg_emb_dim": "kg_dim",
    "coarse_loss_lambda": "coarse_lambda",
    "token_freq_th": "token_freq_beta",
    "coarse_weight_th": "token_freq_gamma",
}

# The system's stages, in order (each a config section), and the ablations of the paper's Table 4.
STAGES = ("coarse", "fine", "rec", "conv")
# ``start_stage`` values: a stage to start from, or ``test``: restore the conv checkpoint and only test it (e.g.
# with another decoding setting such as ``block_ngram``).
START_STAGES = STAGES + ("test",)
# The split the test passes score (``eval_split``): ``valid`` chooses budgets and decoding without the test set.
EVAL_SPLITS = ("test", "valid")
ABLATIONS = {
    "none": {},
    "no_coarse": {"skip": ("coarse",), "coarse_lambda": 0.0},
    "no_fine": {"skip": ("fine",)},
    "no_pretrain": {"skip": ("coarse", "fine")},
    "multitask": {"skip": ("coarse", "fine"), "multitask": True},
    "no_history": {"use_history": False},
    "no_kg": {"use_kg": False},
    "no_review": {"use_review": False},
}
# The encoders the conv stage may keep fixed (``conv_freeze``).
FREEZABLE = ("kg", "history", "review")
# Keys the system reads; the sample options (crslab_c2crs.data.options) are read by the dataset and dataloader.
SYSTEM_KEYS = ("conv_freeze", "start_stage", "end_stage", "checkpoint_dir", "ablation", "eval_split")
# What the conv stage keeps its best epoch on (``conv.select_on``): the validation generation loss (lower is
# better), or a metric of the greedy decoding of the validation batches (``conv.decode_valid``; higher is better).
CONV_SELECTIONS = ("gen_loss", "f1") + tuple(f"{name}@{n}" for name in ("bleu", "dist", "dist_ratio")
                                              for n in range(1, 5))
# Stage keys only the conv stage reads.
CONV_STAGE_KEYS = ("decode_valid", "select_on")
# Stage keys only the pre-training stages read: snapshots after given epochs (<stage>-epoch<k>.pth, model and
# optimizer), and continuing a stage from one of them.
PRETRAIN_STAGES = ("coarse", "fine")
PRETRAIN_STAGE_KEYS = ("save_epochs", "resume_epoch")

# The fields that define the function a checkpoint computes beyond its tensor shapes: a checkpoint is refused by a
# run that sets one of them otherwise (dropout, temperature, decoding settings and rec_bias may differ; a zero bias
# and none score alike, and the shapes of everything else are checked by load_state_dict).
FUNCTION_FIELDS = ("kg_activation", "kg_aggregation", "head_norm", "embeddings_scale", "learn_positional_embeddings",
                   "use_history", "use_kg", "use_review")
KG_ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
KG_AGGREGATIONS = ("mean", "sum")
HEAD_NORMS = ("batch", "none")
STOP_LOSSES = ("plain", "weighted")
STOP_RULES = ("stop_first", "argmax")
# When greedy decoding refuses a word right after itself (``block_stutter``).
STUTTER_RULES = ("chat", "always", "never")
# ``mixed_precision`` (Accelerate's name): the dtype the encoders' Transformer layers compute in.
MIXED_PRECISIONS = ("fp32", "bf16")

# Filled from CRSLab's vocab/side_data, never from the YAML.
_DATA_FIELDS = (
    "vocab_size",
    "n_entity",
    "n_relation",
    "pad_token_idx",
    "start_token_idx",
    "end_token_idx",
    "pad_entity_idx",
)


@dataclass
class C2CRSConfig:
    """Hyper-parameters of :class:`~crslab_c2crs.model.c2crs.model.C2CRSModel`.

    Defaults are the paper's / reference's ReDial settings (reference notes §2.1, §1.3).

    Attributes:
        vocab_size, n_entity, n_relation: sizes of the token vocabulary and of the DBpedia KG.
        pad_token_idx, start_token_idx, end_token_idx, pad_entity_idx: special ids.
        token_dim: token / conversation dimension ``d_t`` (history, reviews, decoder).
        kg_dim: KG node and contrastive projection dimension ``d_E``.
        n_heads, n_layers, ffn_size, dropout, attention_dropout, relu_dropout: Transformer sizes, shared by
            the history encoder, the review encoder and the decoder.
        num_bases: R-GCN basis decomposition size.
        kg_activation: σ of Eq. 3 after the R-GCN. Default "identity" (as the reference): with the paper's
            "relu" every recommendation score e_u · n_i is non-negative, and it trailed identity by 0.016
            validation Recall@10 and 0.034 Recall@50 after 3 rec epochs (README, "Where we follow the paper").
        kg_aggregation: Z_{e,r} of Eq. 3: ``"sum"`` (Z = 1, the paper's section 5.1.4; default) or ``"mean"``
            (the number of neighbours under r, PyG's and the reference's).
        fast_rgcn: use the exact fast featureless R-GCN kernel instead of PyG's ``RGCNConv``.
        head_norm: normalisation inside the contrastive projection heads: ``"batch"`` (SimCLR's BatchNorm,
            default: leaves the chance plateau sooner) or ``"none"`` (the reference's heads).
        temperature: τ of Eq. 5.
        coarse_lambda: λ of Eq. 7.
        n_positions, embeddings_scale, learn_positional_embeddings: position codes and embedding scaling.
        response_truncate: maximum number of generated tokens at test time.
        block_ngram: n > 0 forbids greedy decoding to repeat an n-gram within a response (ParlAI's
            ``beam_block_ngram``, Hugging Face's ``no_repeat_ngram_size``); 0 (default) is the paper's plain greedy
            decoding. A decoding choice, not part of the model: the benchmark figures use 0.
        block_stutter: when greedy decoding may not say a word right after itself ("so so so") unless the
            training responses repeat that word so (:func:`~crslab_c2crs.model.c2crs.decoder.repeatable_tokens`):
            ``"chat"`` (default: in the chat, not in the test pass, whose figures stay the paper's plain greedy
            decoding), ``"always"`` or ``"never"``.
        token_freq_beta, token_freq_gamma: β and γ of Eq. 12.
        stop_loss: how the weighted loss of Eq. 11 treats END, which is not a word. ``"plain"`` (default): the
            stop decision keeps the plain likelihood, ``−log P(END)`` or ``−log P(continue)``, and α weighs only
            the choice of the word, ``α(w) · (−log P(w | continue))``, so the weights change which words are
            said and, at the optimum, not when a response ends (decoding that compares END with the best single
            word, whose probability the weights flatten, still ends early: see ``stop_rule``). ``"weighted"``: END
            is one more target of weight 1 (our earlier runs); its optimum inflates P(END) by 1 / α against the
            frequent words it competes with. Measured outcomes of both: README.
        stop_rule: how greedy decoding decides to end a response. ``"stop_first"`` (default) takes the stop
            decision first, END exactly when ``P(END) > P(continue)``, and otherwise the most probable word: the
            greedy choice under the factorisation ``P(w) = P(continue) · P(w | continue)`` that ``stop_loss:
            plain`` trains. ``"argmax"``: END is one more candidate beside every word (plain greedy decoding,
            KGSF's and the reference's); with α-weighted words, whose best single probability the weights
            flatten, END then wins after a word or two (README).
        rec_bias: a learned per-item bias in the recommender's scores (Eq. 8 has none; the authors' code, KGSF
            and KBRD have one): without it a context with no entity cannot rank (see ``Recommender``).
        rec_history_fallback: a context without entities (e_G = 0, one ReDial sample in ten) gets the history view
            e_C as its user representation instead, through a linear map into the KG space that starts at zero (so
            at first the bias alone scores such a context, as without the option) and is learnt in the rec stage; a
            departure from Eq. 8 (the paper's e_u is e_G alone), through which a pre-trained history view can reach
            the recommender. Needs the history view.
        gradient_checkpointing: recompute the history and review encoders' layers in backward instead of keeping
            their activations (Hugging Face's name), and compute the decoder's vocabulary-sized outputs 512
            targets at a time, recomputed in backward: the same gradients, less peak memory in every stage that
            trains those parts, for one more forward pass of them (docs/benchmark.md, memory).
        mixed_precision: ``"fp32"`` (default, float32 throughout) or ``"bf16"``: the history and review encoders'
            Transformer layers run under ``torch.autocast`` in bfloat16 (matrix products in bfloat16, weights,
            gradients and optimizer states stay float32; the layers' output is cast back to float32, so pooling,
            heads, losses and the R-GCN are unchanged). Faster where the CPU multiplies bfloat16 in hardware (AMX,
            AVX-512 BF16) and on GPUs; the products' saved inputs are half the size (the float32 residual stream
            is not); results change by bfloat16 rounding (docs/benchmark.md, speed options). Attention itself stays
            float32: CPU's bfloat16 attention backward is slower than its float32 one.
        fast_dropout: every dropout of the model draws its masks as 16-bit random integers
            (:class:`~crslab_c2crs.model.c2crs.dropout.FastDropout`; ``p`` rounded to 1/65536) instead of
            ``nn.Dropout``'s floats: cheaper on CPU, a boolean mask kept for backward, a different random stream.
        use_history, use_kg, use_review: ablation switches (Table 4 "w/o CH", "w/o SD", "w/o UD").
    """

    vocab_size: int
    n_entity: int
    n_relation: int
    pad_token_idx: int = 0
    start_token_idx: int = 1
    end_token_idx: int = 2
    pad_entity_idx: int = 0
    token_dim: int = 300
    kg_dim: int = 128
    n_heads: int = 2
    n_layers: int = 2
    ffn_size: int = 300
    dropout: float = 0.1
    attention_dropout: float = 0.0
    relu_dropout: float = 0.1
    num_bases: int = 8
    kg_activation: str = "identity"
    kg_aggregation: str = "sum"
    fast_rgcn: bool = True
    head_norm: str = "batch"
    temperature: float = 0.07
    coarse_lambda: float = 0.2
    n_positions: int = 1024
    embeddings_scale: bool = True
    learn_positional_embeddings: bool = False
    response_truncate: int = DEFAULTS.response_truncate
    block_ngram: int = 0
    block_stutter: str = "chat"
    token_freq_beta: float = 1500.0
    token_freq_gamma: float = 0.02
    stop_loss: str = "plain"
    stop_rule: str = "stop_first"
    rec_bias: bool = True
    rec_history_fallback: bool = False
    gradient_checkpointing: bool = False
    mixed_precision: str = "fp32"
    fast_dropout: bool = False
    use_history: bool = True
    use_kg: bool = True
    use_review: bool = True

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, _validated(field.name, field.type, getattr(self, field.name)))
        if self.token_dim % self.n_heads:
            raise ConfigError(f"C2CRS option 'token_dim'={self.token_dim} must be divisible by n_heads={self.n_heads}")
        if self.rec_history_fallback and not self.use_history:
            raise ConfigError("C2CRS option 'rec_history_fallback' needs the history view (not with ablation "
                              "no_history)")

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (saved in checkpoints beside the weights)."""
        return dataclasses.asdict(self)

    @classmethod
    def option_names(cls) -> list[str]:
        """Every config key this model reads: its tunable fields and their CRSLab/reference aliases."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in _DATA_FIELDS] + list(OPT_ALIASES)

    @classmethod
    def from_opt(cls, opt: Mapping[str, Any], vocab: Mapping[str, Any], side_data: Mapping[str, Any]) -> "C2CRSConfig":
        """Build the config from CRSLab's option dict, vocabulary and side data.

        ``opt`` may be CRSLab's ``Config`` or a plain dict; missing keys take the defaults. Our option names
        and their CRSLab/reference aliases (:data:`OPT_ALIASES`) are both accepted.

        Raises:
            ConfigError: an option has a value of the wrong type or out of range, or an option is given under
                two spellings with different values; the message names the option.
        """
        sentinel = object()
        values: dict[str, Any] = {}
        source: dict[str, str] = {}
        tunable = [f.name for f in dataclasses.fields(cls) if f.name not in _DATA_FIELDS]
        keys = [(name, name) for name in tunable] + [(alias, name) for alias, name in OPT_ALIASES.items()]
        for key, name in keys:
            value = opt.get(key, sentinel)
            if value is sentinel or value is None:
                continue
            if name in values and values[name] != value:
                raise ConfigError(
                    f"C2CRS option given twice with different values: '{source[name]}'={values[name]!r} "
                    f"and '{key}'={value!r}"
                )
            values[name], source[name] = value, key
        try:
            entity_kg = side_data["entity_kg"]
            data = dict(
                vocab_size=vocab["vocab_size"],
                n_entity=vocab["n_entity"],
                n_relation=entity_kg["n_relation"],
                pad_token_idx=vocab["pad"],
                start_token_idx=vocab["start"],
                end_token_idx=vocab["end"],
                pad_entity_idx=vocab["pad_entity"],
            )
        except KeyError as err:
            raise ConfigError(f"C2CRS needs vocab/side_data entry {err.args[0]!r}, which is missing") from err
        try:
            return cls(**data, **values)
        except ConfigError as err:
            renamed = str(err)
            for name, key in source.items():
                if key != name:
                    renamed = renamed.replace(f"'{name}'", f"'{key}' (= {name})")
            raise ConfigError(renamed) from err


def _validated(name: str, annotation: Any, value: Any) -> Any:
    """Check one field's type and range and return it normalised (ints given for floats become floats)."""
    kind = annotation if isinstance(annotation, str) else annotation.__name__
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"C2CRS option '{name}' must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"C2CRS option '{name}' must be an integer, got {value!r}")
        minimum = 0 if name.endswith("_idx") or name == "block_ngram" else 1
        if value < minimum:
            raise ConfigError(f"C2CRS option '{name}' must be >= {minimum}, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"C2CRS option '{name}' must be a number, got {value!r}")
        value = float(value)
        if name.endswith("dropout") and not 0.0 <= value < 1.0:
            raise ConfigError(f"C2CRS option '{name}' must be in [0, 1), got {value!r}")
        if name in ("temperature", "token_freq_beta", "token_freq_gamma") and value <= 0.0:
            raise ConfigError(f"C2CRS option '{name}' must be > 0, got {value!r}")
        if name == "coarse_lambda" and value < 0.0:
            raise ConfigError(f"C2CRS option '{name}' must be >= 0, got {value!r}")
        return value
    if name == "kg_activation" and value not in KG_ACTIVATIONS:
        raise ConfigError(f"C2CRS option 'kg_activation' must be one of {KG_ACTIVATIONS}, got {value!r}")
    if name == "kg_aggregation" and value not in KG_AGGREGATIONS:
        raise ConfigError(f"C2CRS option 'kg_aggregation' must be one of {KG_AGGREGATIONS}, got {value!r}")
    if name == "head_norm" and value not in HEAD_NORMS:
        raise ConfigError(f"C2CRS option 'head_norm' must be one of {HEAD_NORMS}, got {value!r}")
    if name == "stop_loss" and value not in STOP_LOSSES:
        raise ConfigError(f"C2CRS option 'stop_loss' must be one of {STOP_LOSSES}, got {value!r}")
    if name == "stop_rule" and value not in STOP_RULES:
        raise ConfigError(f"C2CRS option 'stop_rule' must be one of {STOP_RULES}, got {value!r}")
    if name == "block_stutter" and value not in STUTTER_RULES:
        raise ConfigError(f"C2CRS option 'block_stutter' must be one of {STUTTER_RULES}, got {value!r}")
    if name == "mixed_precision" and value not in MIXED_PRECISIONS:
        raise ConfigError(f"C2CRS option 'mixed_precision' must be one of {MIXED_PRECISIONS}, got {value!r}")
    return value


def check_c2crs_options(opt: Mapping[str, Any], source: str) -> None:
    """C2-CRS's own keys: start stage, ablation, frozen encoders, and the model options (typed by C2CRSConfig,
    built here with placeholder vocabulary sizes, as the data is not loaded yet)."""
    from crslab_c2crs.data.dataset import C2CRSFieldsMixin
    from crslab_c2crs.registry import crslab_table

    # CRSLab's own ReDial samples lack the mention spans and review sentences: the run would fail after loading
    readable = sorted(name for name, cls in crslab_table("dataset").items()
                      if isinstance(cls, type) and issubclass(cls, C2CRSFieldsMixin))
    if opt.get("dataset") not in readable:
        raise ConfigError(f"dataset: C2-CRS reads the datasets with mention spans and review sentences "
                          f"({', '.join(readable)}), not {opt.get('dataset')!r}; correct it in {source} or with "
                          f"--set dataset={readable[0]}")
    if (opt.get("start_stage") or STAGES[0]) not in START_STAGES:
        raise choice_error("start_stage (--stage)", opt["start_stage"], START_STAGES, "stage", source)
    end_stage = opt.get("end_stage") or STAGES[-1]
    if end_stage not in STAGES:
        raise choice_error("end_stage", end_stage, STAGES, "stage", source)
    start_stage = opt.get("start_stage") or STAGES[0]
    if start_stage != "test" and STAGES.index(start_stage) > STAGES.index(end_stage):
        raise ConfigError(f"start_stage={start_stage} comes after end_stage={end_stage}: nothing would run; "
                          f"correct one of them in {source} or with --stage / --set end_stage=STAGE")
    if (opt.get("eval_split") or "test") not in EVAL_SPLITS:
        raise choice_error("eval_split", opt["eval_split"], EVAL_SPLITS, "split", source)
    if (opt.get("ablation") or "none") not in ABLATIONS:
        raise choice_error("ablation", opt["ablation"], ABLATIONS, "value", source)
    frozen = opt.get("conv_freeze") or []
    if not isinstance(frozen, list) or not set(frozen) <= set(FREEZABLE):
        raise bad_value("conv_freeze", frozen, f"a list of parts among {list(FREEZABLE)}", source)
    for stage in (name for name in STAGES if name != "conv"):
        section = opt.get(stage)
        for key in CONV_STAGE_KEYS:
            if isinstance(section, Mapping) and key in section:
                raise ConfigError(f"{stage}.{key}: only the conv stage reads {key}; move it to the conv section of "
                                  f"{source} (or --set conv.{key}=...)")
    for stage in STAGES:
        section = opt.get(stage) if isinstance(opt.get(stage), Mapping) else {}
        for key in PRETRAIN_STAGE_KEYS:
            if key in section and stage not in PRETRAIN_STAGES:
                raise ConfigError(f"{stage}.{key}: only the pre-training stages ({', '.join(PRETRAIN_STAGES)}) read "
                                  f"{key}; correct it in {source}")
        epochs = section.get("epoch", 0)
        saves = section.get("save_epochs")
        if saves is not None and (not isinstance(saves, list) or not all(
                isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= epochs for k in saves)):
            raise bad_value(f"{stage}.save_epochs", saves, f"a list of epoch counts from 1 to {stage}.epoch={epochs}",
                            source)
        resume = section.get("resume_epoch")
        if resume is not None and (isinstance(resume, bool) or not isinstance(resume, int)
                                   or not 1 <= resume < epochs):
            raise bad_value(f"{stage}.resume_epoch", resume, f"an epoch count from 1 to {stage}.epoch - 1 = "
                            f"{epochs - 1} (a snapshot written by save_epochs)", source)
        if resume is not None and (opt.get("start_stage") or STAGES[0]) != stage:
            raise ConfigError(f"{stage}.resume_epoch={resume} continues the {stage} stage: start there too (--stage "
                              f"{stage})")
    conv = opt.get("conv") if isinstance(opt.get("conv"), Mapping) else {}
    select_on = conv.get("select_on", "gen_loss")
    if select_on not in CONV_SELECTIONS:
        raise choice_error("conv.select_on", select_on, CONV_SELECTIONS, "selection metric", source)
    if select_on != "gen_loss" and conv.get("decode_valid") is not True:
        raise ConfigError(f"conv.select_on={select_on} keeps the epoch whose greedy decoding of the validation "
                          f"batches scores best: set conv.decode_valid=true as well (in {source} or with --set)")
    placeholder_vocab = {"vocab_size": 4, "n_entity": 2, "pad": 0, "start": 1, "end": 2, "pad_entity": 0}
    try:
        C2CRSConfig.from_opt(opt, placeholder_vocab, {"entity_kg": {"n_relation": 1}})
    except ConfigError as err:
        raise ConfigError(f"{err}; correct it in {source} or with --set") from None


# decode_valid (conv): greedy-decode the validation batches after every epoch; select_on: what the best conv
# epoch is chosen on (C2CRSSystem.run_stage)
register_config_keys("C2CRS", set(C2CRSConfig.option_names()) | set(SYSTEM_KEYS)
                     | {field.name for field in dataclasses.fields(SampleOptions)}
                     | {field.name for field in dataclasses.fields(PretrainViews)}, STAGES,
                     stage_keys=CONV_STAGE_KEYS + PRETRAIN_STAGE_KEYS)
register_config_check("C2CRS", check_c2crs_options)
register_config_check("C2CRS", check_pretrain_views)
