"""benchmarks/gpu_suite.py: --quick runs every figure on the CPU and writes one JSON table."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"
FIGURES = (
    "LSTM h64x2 T64 F95 b1024 fp32",
    "LSTM bf16 / fp32",
    "Transformer d128x2 bf16 / fp32",
    "Transformer bf16 compiled / eager",
    "Ranker d192 L4 T128 bf16 MFU eager",
    "Ranker d192 L4 T128 bf16 MFU compiled",
    "GPT d384 L6 T256 B64 bf16 MFU eager",
    "GPT d384 L6 T256 B64 bf16 MFU compiled",
    "GPT d768 L12 T256 B64 bf16 MFU compiled",
    "GPT decode step, 4 sequences, bf16",
    "GPT decode step, 4 sequences, fp32",
    "GPT fp32 tokens, graph step vs eager cache",
    "GPT KV cache vs recompute, d384 bf16",
    "GPT KV cache vs recompute, d768 bf16",
    "GPT sampling 10 symbols x 2 paths x 4 tokens",
    "Kronos small KV cache paths/s",
    "Kronos KV cache vs recompute",
    "Kronos compiled / eager (KV cache)",
    "Kronos fp32 graph step vs eager cache",
    "alphaforge run 4 nets x 1 fold (tiny)",
)


def _load_suite():
    """The script as a module (registered first: its dataclasses look their module up)."""
    if "gpu_suite" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_suite"] = module
        spec.loader.exec_module(module)
    return sys.modules["gpu_suite"]


def test_quick_mode_runs_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    env = {
        **os.environ,
        "ALPHAFORGE_COMPILE_CACHE": str(tmp_path / "cache"),
        "ALPHAFORGE_COMPILE_BACKEND": "eager",
    }
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["quick"] is True and payload["device"] == "cpu"
    rows = {r["figure"]: r for r in payload["rows"]}
    assert set(FIGURES) <= set(rows), sorted(set(FIGURES) - set(rows))
    assert {r["status"] for r in rows.values()} == {"ran"}, [
        (k, r["status"], r["note"]) for k, r in rows.items() if r["status"] != "ran"
    ]
    assert rows["GPT fp32 tokens, graph step vs eager cache"]["value"] == 0  # static == eager
    assert rows["Kronos fp32 graph step vs eager cache"]["value"] == 0
    assert rows["Ranker d192 L4 T128 bf16 MFU eager"]["aim"] == ">= 15"
    assert "figure" in proc.stdout and "ran (quick)" in proc.stdout  # the printed table


def test_rows_judge_against_their_aims() -> None:
    suite = _load_suite()
    Row = suite.Row
    assert Row("a", 2.0, "x", ">=", 1.3).judge(quick=False).status == "pass"
    assert Row("a", 1.0, "x", ">=", 1.3).judge(quick=False).status == "fail"
    assert Row("a", 0.5, "ms", "<=", 1.0).judge(quick=False).status == "pass"
    assert Row("a", 3, "differ", "==", 0).judge(quick=False).status == "fail"
    assert Row("a", float("nan"), "%", ">=", 15).judge(quick=False).status == "n/a"
    assert Row("a", 1.0, "x", ">=", 1.3).judge(quick=True).status == "ran"
    assert Row("a", None, "s", "<=", 90, status="skipped").judge(quick=False).status == "skipped"


def test_e2e_is_skipped_when_its_packages_are_missing(monkeypatch) -> None:
    suite = _load_suite()
    monkeypatch.setitem(sys.modules, "alphaforge.run", None)  # import fails like a missing dep
    ctx = suite.Context(suite.dev.resolve_device("cpu"), quick=True, budget_s=60, start=0.0)
    suite.e2e_section(ctx)
    (row,) = ctx.rows
    assert row.status == "skipped" and "alphaforge.run" in row.note


@pytest.mark.parametrize("argv", [["--only", "nope"]])
def test_unknown_sections_are_refused(argv) -> None:
    with pytest.raises(SystemExit):
        _load_suite().main(["--quick", *argv])
