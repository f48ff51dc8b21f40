from pathlib import Path

import pytest
import yaml

from alphaforge.config import load_config
from alphaforge.errors import ConfigError
from alphaforge.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]


def _tiny():
    return yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())


def test_shipped_configs_load():
    # tune*.yaml are `alphaforge tune --config` files, checked in tests/test_tune.py
    paths = [p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("tune")]
    assert len(paths) >= 3
    for path in paths:
        load_config(path)


@pytest.mark.parametrize(
    "section,key", [(None, "modles"), ("split", "trian"), ("data", "sorce"), ("label", "horizn")]
)
def test_unknown_key_names_key_and_valid_keys(section, key):
    raw = _tiny()
    (raw if section is None else raw[section])[key] = 1
    with pytest.raises(ConfigError) as exc:
        load_config(raw)
    msg = str(exc.value)
    assert key in msg and "valid keys" in msg
    if section == "split":
        assert "train" in msg and "embargo" in msg


def test_unknown_model_name_lists_choices():
    raw = _tiny()
    raw["models"][0]["name"] = "lightgmb"
    with pytest.raises(ConfigError, match="lightgmb") as exc:
        load_config(raw)
    assert "lightgbm" in str(exc.value) and "xgboost" in str(exc.value)


def test_unknown_model_param_lists_fields():
    raw = _tiny()
    raw["models"][0]["params"]["num_leafs"] = 3
    with pytest.raises(ConfigError, match="num_leafs"):
        load_config(raw)


def test_yaml_that_is_not_a_mapping(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(p)


def test_windows_that_do_not_fit_fail_before_training(tmp_path, monkeypatch):
    # fitting anything would be a bug: the error must come from the split check first
    from alphaforge.models import base

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(base.BaseForecaster, "fit", boom)
    raw = _tiny()
    raw["split"]["train"] = 5000
    with pytest.raises(ConfigError, match="split") as exc:
        run_experiment(raw, out=tmp_path / "r")
    assert "train" in str(exc.value)
    raw = _tiny()
    raw["label"]["horizon"] = 50
    with pytest.raises(ConfigError, match="horizon"):
        run_experiment(raw, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
