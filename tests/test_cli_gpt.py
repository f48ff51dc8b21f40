"""``gpt`` commands end to end on a small synthetic panel, and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from alphaforge.cli.gpt import app
from alphaforge.models.token_streams import read_tokens

runner = CliRunner()
DATA = "synthetic:n_symbols=3,n_bars=300,seed=1"


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokenize (quantile bins, fast) and train a tiny model once for the module."""
    root = tmp_path_factory.mktemp("gpt_cli")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    res = _invoke(
        "tokenize",
        "--data",
        DATA,
        "--out",
        root / "tokens.parquet",
        "--codebook",
        16,
        "--method",
        "quantile",
        "--fields",
        "ret,range",
    )
    assert res.exit_code == 0, res.output
    res = _invoke(
        "train",
        "--tokens",
        root / "tokens.parquet",
        "--out",
        root / "model",
        "--seq-len",
        16,
        "--n-layer",
        1,
        "--n-embd",
        16,
        "--n-head",
        2,
        "--n-kv-head",
        1,
        "--epochs",
        2,
        "--batch-size",
        16,
        "--device",
        "cpu",
        "--symbol-tokens",
    )
    torch.set_num_threads(old)
    assert res.exit_code == 0, res.output
    assert "trained" in res.output and "valid cross-entropy" in res.output
    return root


def test_tokenize_writes_tokens_and_tokenizer(workdir: Path) -> None:
    frame, meta = read_tokens(workdir / "tokens.parquet")
    assert list(frame.columns) == ["timestamp", "symbol", "token"]
    assert len(frame) == 3 * 299 and frame["token"].between(0, 15).all()
    assert meta["fields"] == ["ret", "range"] and meta["vocab_size"] == 16
    assert (workdir / meta["tokenizer"] / "tokenizer.json").is_file()
    assert pd.Timestamp(meta["train_end"]) < frame["timestamp"].max()


def test_vqvae_tokenize(tmp_path: Path) -> None:
    res = _invoke(
        "tokenize",
        "--data",
        DATA,
        "--out",
        tmp_path / "t.parquet",
        "--codebook",
        8,
        "--epochs",
        1,
        "--patch",
        2,
    )
    assert res.exit_code == 0, res.output
    assert "vqvae, usage" in res.output and (tmp_path / "t.tokenizer" / "tokenizer.pt").is_file()


def test_generate_prints_samples_with_decoded_returns(workdir: Path) -> None:
    args = ["generate", "--model", workdir / "model", "--seed-tokens", "3 4 5", "--num", 7]
    args += ["--samples", 3, "--top-k", 4, "--symbol", "S001", "--seed", 1]
    res = _invoke(*args)
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("sample")]
    assert len(lines) == 3 and all("cumulative return" in ln for ln in lines)
    assert all(len(ln.split("|")[0].split(":")[1].split()) == 7 for ln in lines)
    again = _invoke(*args)
    assert again.output == res.output  # seeded


def test_evaluate_prints_model_and_baselines(workdir: Path) -> None:
    res = _invoke("evaluate", "--model", workdir / "model", "--tokens", workdir / "tokens.parquet")
    assert res.exit_code == 0, res.output
    for name in ("gpt", "unigram", "bigram", "perplexity", "top-5"):
        assert name in res.output


def test_analyze_writes_tables_and_plots(workdir: Path, tmp_path: Path) -> None:
    res = _invoke("analyze", "--tokens", workdir / "tokens.parquet", "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {
        "frequencies.csv",
        "transitions.csv",
        "entropy.csv",
        "ngrams_2.csv",
        "ngrams_3.csv",
        "outliers.csv",
        "frequencies.png",
        "transitions.png",
    } <= names
    freq = pd.read_csv(tmp_path / "a" / "frequencies.csv")
    assert freq["count"].sum() == 3 * 299 and "decoded_return" in freq


@pytest.mark.parametrize(
    "args,error",
    [
        (
            ["tokenize", "--data", DATA, "--out", "{tmp}/t.parquet", "--fields", "ret,foo"],
            "ConfigError: fields must start with 'ret'",
        ),
        (
            ["tokenize", "--data", DATA, "--out", "{tmp}/t.parquet", "--method", "kmeans"],
            "ConfigError: --method: expected one of",
        ),
        (
            ["train", "--tokens", "{tmp}/missing.parquet", "--out", "{tmp}/m"],
            "DataError: {tmp}/missing.parquet: cannot read tokens",
        ),
        (
            ["generate", "--model", "{model}", "--seed-tokens", "1 99"],
            "ConfigError: need tokens in [0, 16)",
        ),
        (
            ["generate", "--model", "{model}", "--seed-tokens", "1 x"],
            "ConfigError: --seed-tokens: expected integers",
        ),
        (["generate", "--model", "{tmp}/nope"], "DataError: {tmp}/nope: not a saved GPT"),
        (
            ["evaluate", "--model", "{model}", "--tokens", "{tokens}", "--valid-from", "soon"],
            "ConfigError: --valid-from: expected a timestamp",
        ),
    ],
)
def test_errors_are_one_line_exit_2(args, error, workdir: Path, tmp_path: Path) -> None:
    fill = {"tmp": tmp_path, "model": workdir / "model", "tokens": workdir / "tokens.parquet"}
    res = _invoke(*(a.format(**fill) for a in args))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(error.format(**fill)), res.output
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "m").exists()
