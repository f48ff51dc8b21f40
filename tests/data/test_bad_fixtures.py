"""Every malformed fixture is refused with a located message; repair mode drops, never fills."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from alphaforge.data import load_panel
from alphaforge.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BAD = FIXTURES / "bad"
EXPECTED: dict[str, dict] = json.loads((BAD / "EXPECTED.json").read_text())
DEFECTS = sorted(k for k, v in EXPECTED.items() if v["contains"] is not None)
REPAIRABLE = sorted(k for k in DEFECTS if EXPECTED[k]["repair"])


def test_fixture_table_covers_every_defect_class() -> None:
    classes = {name.split(".")[0] for name in DEFECTS}
    assert len(classes) >= 25 and len(DEFECTS) >= 40
    assert sum(name.endswith(".parquet") for name in DEFECTS) >= 15
    for name in DEFECTS:
        assert name == "does_not_exist.csv" or (BAD / name).is_file(), name
    for path in BAD.iterdir():
        assert path.name == "EXPECTED.json" or path.name in EXPECTED, path.name
        assert path.stat().st_size < 25_000, path.name


@pytest.mark.parametrize("name", DEFECTS)
def test_bad_fixture_raises_located_error(name: str) -> None:
    spec = EXPECTED[name]
    with pytest.raises(DataError) as info:
        load_panel(BAD / name, **spec["kwargs"])
    message = str(info.value)
    assert name in message
    for part in spec["contains"]:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("name", sorted(k for k in DEFECTS if not EXPECTED[k]["repair"]))
def test_repair_does_not_hide_unrepairable_defects(name: str) -> None:
    spec = EXPECTED[name]
    with pytest.raises(DataError) as info:
        load_panel(BAD / name, repair=True, **spec["kwargs"])
    assert spec["contains"][0] in str(info.value)


@pytest.mark.parametrize("name", REPAIRABLE)
def test_repair_drops_and_reports_without_filling(name: str, panel_contract) -> None:
    spec = EXPECTED[name]
    ext = ".parquet" if name.endswith(".parquet") else ".csv.gz"
    control = load_panel(BAD / f"control_valid{ext}", **spec["kwargs"])
    panel = load_panel(BAD / name, repair=True, **spec["kwargs"])
    panel_contract(panel)
    repairs = panel.attrs["repairs"]
    assert [r["row"] for r in repairs] == spec["repair"]
    assert all(r["action"] == "dropped" and r["reason"] for r in repairs)
    assert len(panel) == len(control) - len(repairs)  # dropped, not filled
    for r in repairs:
        if "duplicate" not in r["reason"]:
            assert (r["timestamp"], r["symbol"]) not in panel.index  # the bar is a gap now


@pytest.mark.parametrize("name", ["control_valid.csv.gz", "control_valid.parquet"])
def test_control_fixture_loads(name: str, panel_contract) -> None:
    panel = load_panel(BAD / name, **EXPECTED[name]["kwargs"])
    panel_contract(panel)
    assert panel.shape == (600, 5)
    assert load_panel(BAD / name, repair=True, min_bars=100).attrs["repairs"] == []


def test_generator_reproduces_expected_table(tmp_path: Path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_bad_fixtures", FIXTURES / "make_bad_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path)
    module.main()
    assert json.loads((tmp_path / "EXPECTED.json").read_text()) == EXPECTED
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in BAD.iterdir())
