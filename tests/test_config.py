"""Config loading: YAML then --set overrides, and every unknown key or flag named in the error."""
import pytest

from crslab_c2crs.cli import build_parser
from crslab_c2crs.config import load_config, parse_override
from crslab_c2crs.errors import ConfigError

KGSF = "config/kgsf/redial.yaml"


def test_overrides_apply_in_order_and_parse_yaml_values():
    opt = load_config(KGSF, ["rec.epoch=2", "conv.optimizer.lr=5e-4", "rec.epoch=3", "scale=0.5"])
    assert opt["rec"]["epoch"] == 3
    assert opt["conv"]["optimizer"]["lr"] == pytest.approx(5e-4)
    assert opt["scale"] == 0.5


def test_yaml_file_is_not_modified_by_overrides():
    load_config(KGSF, ["rec.epoch=1"])
    assert load_config(KGSF)["rec"]["epoch"] == 9


@pytest.mark.parametrize("override, message", [
    ("rec.epochs=2", "unknown key rec.'epochs'"),
    ("n_layer=3", "unknown key 'n_layer'"),
    ("nosuch.epoch=1", "'nosuch' is not a section"),
    ("rec.epoch", "expected KEY=VALUE"),
])
def test_unknown_keys_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(KGSF, [override])


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: ReDial\ntokenize: nltk\nmodel: KGSF\ncopy: true\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'copy' for model KGSF"):
        load_config(bad)


def test_missing_config_file_and_unknown_model(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    other = tmp_path / "other.yaml"
    other.write_text("dataset: ReDial\ntokenize: nltk\nmodel: NoSuchModel\n")
    with pytest.raises(ConfigError, match="model 'NoSuchModel' has no declared config keys"):
        load_config(other)


def test_parse_override_keeps_strings_and_numbers():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("name=Adam") == (["name"], "Adam")


def test_unknown_flag_is_rejected_by_name(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-c", KGSF, "--epochs", "3"])
    assert "unrecognized arguments: --epochs" in capsys.readouterr().err


def test_crslab_flags_are_accepted():
    args = build_parser().parse_args(["-c", KGSF, "-g", "-1", "-sd", "-rd", "-ss", "-rs", "-d", "-i", "-tb",
                                      "--data-root", "x", "--seed", "3", "--set", "rec.epoch=1"])
    assert (args.gpu, args.seed, args.overrides, args.data_root) == ("-1", 3, ["rec.epoch=1"], "x")
