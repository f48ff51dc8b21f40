"""Registry: names, lazy imports, error messages, the baselines list, the static listing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import alphaforge.models
from alphaforge import registry
from alphaforge.errors import ConfigError
from alphaforge.models.base import BaseForecaster, Capabilities
from alphaforge.registry import (
    BASELINES,
    CAPABILITY_FIELDS,
    MODELS,
    ModelEntry,
    get_model,
    list_models,
    name_of,
)


def test_unknown_model_lists_available_names() -> None:
    with pytest.raises(ConfigError) as err:
        get_model("lgbm")
    assert "unknown model 'lgbm'" in str(err.value)
    assert "available: " + ", ".join(sorted(MODELS)) in str(err.value)


def test_every_entry_resolves_to_a_forecaster_named_back() -> None:
    for name, entry in MODELS.items():
        cls = get_model(name)
        assert issubclass(cls, BaseForecaster) and name_of(cls) == name
        assert cls.capabilities.family == entry.family
        assert getattr(alphaforge.models, cls.__name__) is cls  # lazy attribute access
    assert set(BASELINES) <= set(MODELS)


def test_missing_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ModelEntry("alphaforge_fake_dep_xyz.models:Net", "neural", "fake", "test entry")
    monkeypatch.setitem(registry.MODELS, "fake_net", fake)
    with pytest.raises(
        ConfigError,
        match=r"needs the package 'alphaforge_fake_dep_xyz'.*"
        r"pip install 'alphaforge\[fake\]'",
    ):
        get_model("fake_net")
    row = next(r for r in list_models() if r["name"] == "fake_net")
    assert row["available"] is False and row["capabilities"] is None


def test_list_models_rows() -> None:
    rows = {row["name"]: row for row in list_models()}
    assert list(rows) == list(MODELS)
    assert rows["lightgbm"]["capabilities"]["early_stopping"] is True
    assert rows["garch"]["baseline"] and not rows["xgboost"]["baseline"]


def test_capability_fields_are_those_of_the_dataclass() -> None:
    assert CAPABILITY_FIELDS == tuple(f.name for f in dataclasses.fields(Capabilities))


def test_static_rows_match_the_classes() -> None:
    """Each row's static summary equals its class's ``capabilities``, so the two cannot drift."""
    rows = {row["name"]: row for row in list_models()}
    checked = []
    for name, entry in MODELS.items():
        assert entry.flags is not None, f"{name}: the row states no capability flags"
        if not rows[name]["available"]:  # its optional packages are not installed here
            continue
        cls = get_model(name)
        assert rows[name]["capabilities"] == dataclasses.asdict(cls.capabilities), name
        checked.append(name)
    assert {"lightgbm", "lstm", "ranker", "zero", "garch", "fusion"} <= set(checked)


def test_unavailable_row_keeps_its_capabilities_and_is_not_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = ModelEntry(
        "alphaforge_fake_dep_xyz.models:Net",
        "neural",
        "fake",
        "test entry",
        flags=("needs_sequence",),
        requires=("torch", "alphaforge_fake_dep_xyz"),
    )
    monkeypatch.setitem(registry.MODELS, "fake_net", fake)
    row = next(r for r in list_models() if r["name"] == "fake_net")
    assert row["available"] is False and row["extra"] == "fake"
    assert row["capabilities"]["needs_sequence"] is True
    assert row["capabilities"]["early_stopping"] is False
    with pytest.raises(ValueError, match="unknown flags"):
        ModelEntry("m:C", "tree", None, "typo", flags=("early_stoping",))


def test_list_models_imports_no_model_library() -> None:
    code = (
        "import sys\n"
        "from alphaforge.registry import list_models\n"
        "rows = list_models()\n"
        "heavy = ('torch', 'lightgbm', 'xgboost', 'alphaforge.models.rnn',\n"
        "         'alphaforge.models.foundation.toto', 'alphaforge.models.trees')\n"
        "print(len(rows), [m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{len(MODELS)} []"


def test_baselines_for_label_kind() -> None:
    assert registry.baselines_for("return") == ["zero", "trailing_mean", "last_value"]
    assert registry.baselines_for("volatility") == ["trailing_mean", "last_value", "garch"]


def test_import_is_lazy() -> None:
    code = (
        "import sys, alphaforge.registry, alphaforge.models; "
        "print(any(m in sys.modules for m in ('lightgbm', 'xgboost', 'torch', 'arch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
