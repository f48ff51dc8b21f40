"""Concurrent, interrupted, corrupted and full-disk use: nothing is lost, every damage is named.

- Of concurrent writers to one run directory exactly one succeeds; ``--overwrite`` never deletes
  what a live writer holds.
- Concurrent ``tune`` processes for one symbol and root end with the best promoted score stored.
- Every artifact read back (run files, saved models, bundles, checkpoints, tuned records) that is
  truncated or bit-flipped gives one error naming it; a damaged checkpoint restarts training.
- A full disk gives one clear error and leaves nothing behind.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from alphaforge import artifacts
from alphaforge.bundle import fit, load_bundle
from alphaforge.errors import DataError, OutputError
from alphaforge.models.base import BaseForecaster
from alphaforge.models.per_symbol import read_tuned_params
from alphaforge.models.token_streams import read_tokens, write_tokens
from alphaforge.models.tokenizer import VQVAETokenizer, load_tokenizer
from alphaforge.models.training import TensorSource, TrainConfig, fit_torch
from alphaforge.report.load import load_run
from alphaforge.run import rebacktest, run_experiment
from alphaforge.testing import FILE_DAMAGE, truncate_file
from alphaforge.tuning.results import read_best
from alphaforge.utils.integrity import seal
from alphaforge.utils.io import atomic_write_text
from alphaforge.utils.locks import file_lock

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"
CLI = [sys.executable, "-c", "import sys; from alphaforge.cli import app; app()"]
HOLD = textwrap.dedent(
    """
    import sys, time
    from alphaforge.utils.locks import file_lock
    with file_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
    """
)


def _config(tmp_path: Path, n_estimators: int = 5) -> Path:
    cfg = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    cfg["models"] = [{"name": "lightgbm", "params": {"n_estimators": n_estimators}}]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [*CLI, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def held_lock(tmp_path: Path):
    """Hold the lock of a path from another live process, as a concurrent writer does."""
    procs = []

    def hold(path: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- exclusive outputs
def test_concurrent_runs_to_one_out_exactly_one_wins(tmp_path: Path) -> None:
    cfg = _config(tmp_path, n_estimators=60)
    procs = [_cli("run", str(cfg), "--out", "runs/r", cwd=tmp_path) for _ in range(2)]
    done = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in done)
    assert codes == [0, 2], [e for _, _, e in done]
    (err,) = [e.strip() for rc, _, e in done if rc == 2]
    assert len(err.splitlines()) == 1, err
    assert re.search(r"being written by another process|exists and is not empty", err), err
    run = load_run(tmp_path / "runs" / "r")  # the winner's files: complete and verified
    assert set(run.predictions["model"]) >= {"lightgbm"} and run.metrics["models"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r"]  # no temp, no lock


def test_a_live_writer_blocks_run_and_overwrite(tmp_path: Path, held_lock) -> None:
    cfg = _config(tmp_path)
    out = tmp_path / "runs" / "r"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("the live writer's work", encoding="utf-8")
    holder = held_lock(out)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=rf"pid {holder.pid}\b"):
            run_experiment(cfg, out=out, overwrite=overwrite)
    assert (out / "keep.txt").read_text(encoding="utf-8") == "the live writer's work"
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_overwrite_replaces_a_finished_run_and_bundles_lock_too(tmp_path: Path, held_lock):
    cfg = _config(tmp_path)
    out = tmp_path / "runs" / "r"
    run_experiment(cfg, out=out)
    with pytest.raises(OutputError, match="exists and is not empty"):
        run_experiment(cfg, out=out)
    run_experiment(cfg, out=out, overwrite=True)
    load_run(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["r"]
    bundle = fit(cfg)
    held_lock(tmp_path / "b")
    with pytest.raises(OutputError, match="being written by another process"):
        bundle.save(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_auto_named_runs_claimed_at_once_get_different_folders(tmp_path: Path) -> None:
    with artifacts.claim_run_dir(str(tmp_path), "x", None, False) as (a, _):
        with artifacts.claim_run_dir(str(tmp_path), "x", None, False) as (b, _):
            assert a != b
    assert a.is_dir() and b.is_dir()


def test_a_killed_holder_never_blocks_the_next_writer(tmp_path: Path, held_lock) -> None:
    target = tmp_path / "thing"
    holder = held_lock(target)
    with pytest.raises(OutputError):
        with file_lock(target):
            pass
    holder.kill()
    holder.wait()
    with file_lock(target):  # the kernel released the dead holder's lock
        assert (tmp_path / ".thing.lock").exists()
    assert not (tmp_path / ".thing.lock").exists()


# ------------------------------------------------------------------------- gate compare-and-swap
GATE_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from alphaforge.tuning import results, tune

    read = results.read_best

    def slow_read(path):  # widen the read-compare-write window a racing gate would lose in
        out = read(path)
        time.sleep(0.4)
        return out

    results.read_best = slow_read
    root, seed = sys.argv[1], int(sys.argv[2])
    s = tune(
        data="synthetic:n_symbols=2,n_bars=400,seed=1", model="lightgbm", symbols=["S000"],
        trials=2, root=root, seed=seed, storage=f"journal:{root}/study-{seed}.journal",
        fixed_params={"lightgbm": {"n_estimators": 10, "n_jobs": 1}},
    )
    r = s.results[0]
    print(json.dumps({"promoted": r.promoted, "score": r.new_score, "reason": r.reason}))
    """
)


def test_four_concurrent_tunes_keep_the_best_promoted_score(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", GATE_WORKER, str(tmp_path), str(seed)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    got = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    promoted = [g["score"] for g in got if g["promoted"]]
    assert promoted, got
    stored = read_best(tmp_path / "hyperparams" / "best" / "S000.json")
    assert stored is not None
    assert stored["val_score"] == min(promoted), got  # pct_return_mae: lower is better
    assert not list((tmp_path / "hyperparams").rglob(".*.lock"))


# ------------------------------------------------------------------------------------ corruption
DAMAGE = FILE_DAMAGE


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    run_experiment(_config(tmp), out=tmp / "run")
    return tmp / "run"


RUN_FILES = [
    artifacts.CONFIG,
    artifacts.METRICS,
    artifacts.PREDICTIONS,
    artifacts.FOLDS,
    artifacts.RETURNS,
    artifacts.BACKTEST,
    artifacts.FEATURE_IMPORTANCE,
    artifacts.MANIFEST,
]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", RUN_FILES)
def test_damaged_run_file_is_named(finished_run: Path, tmp_path: Path, name: str, damage: str):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    DAMAGE[damage](run / name)
    with pytest.raises(DataError, match=re.escape(name)) as err:
        load_run(run)
    assert "damaged" in str(err.value)
    if name in (artifacts.PREDICTIONS, artifacts.RETURNS, artifacts.MANIFEST):
        with pytest.raises(DataError, match=re.escape(name)):
            rebacktest(run, {"strategy": "long_short"})


def test_rebacktest_save_keeps_the_manifest_true(finished_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    rebacktest(run, {"strategy": "long_short", "costs_bps": 7.0}, save=True)
    load_run(run)  # rewritten files re-recorded: still verified
    (run / "extra.parquet").write_bytes((run / artifacts.BACKTEST).read_bytes())
    with pytest.raises(DataError, match="not in the run's manifest.json"):
        artifacts.verify_run(run, ["extra.parquet"])


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", ["meta.json", "model.txt"])
def test_damaged_saved_model_is_named(finished_run: Path, tmp_path: Path, name: str, damage: str):
    model = tmp_path / "m"
    shutil.copytree(artifacts.model_dir(finished_run, "lightgbm", 0), model)
    BaseForecaster.load(model)  # intact: loads
    DAMAGE[damage](model / name)
    with pytest.raises(DataError, match=re.escape(name)):
        BaseForecaster.load(model)


@pytest.fixture(scope="module")
def saved_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    fit(_config(tmp)).save(tmp / "b")
    return tmp / "b"


BUNDLE_FILES = [
    "manifest.json",
    "config.yaml",
    "models/lightgbm/meta.json",
    "models/lightgbm/model.txt",
]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_damaged_bundle_file_is_named(saved_bundle: Path, tmp_path: Path, name: str, damage: str):
    b = tmp_path / "b"
    shutil.copytree(saved_bundle, b)
    DAMAGE[damage](b / name)
    with pytest.raises(DataError, match=re.escape(name.split("/")[-1])):
        load_bundle(b)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_checkpoint_restarts_training_and_says_so(tmp_path: Path, damage: str, caplog):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    data = TensorSource({"x": x, "y": x @ torch.ones(4)})

    def net() -> torch.nn.Module:
        torch.manual_seed(1)
        return torch.nn.Linear(4, 1)

    def loss(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((m(b["x"]).squeeze(-1) - b["y"]) ** 2).mean()

    cfg = TrainConfig(max_epochs=2, batch_size=32, device="cpu")
    fresh = net()
    fit_torch(fresh, data, loss, cfg, seed=3)
    part = net()
    fit_torch(part, data, loss, cfg, seed=3, checkpoint_dir=tmp_path, max_steps=3)
    DAMAGE[damage](tmp_path / "last.pt")
    resumed = net()
    with caplog.at_level(logging.WARNING, logger="alphaforge"):
        fit_torch(resumed, data, loss, cfg, seed=3, checkpoint_dir=tmp_path, resume=True)
    assert any("last.pt" in r.message and "starting" in r.message for r in caplog.records)
    for a, b in zip(fresh.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # trained again from the start: the uninterrupted result


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_best_record_is_an_error_not_a_missing_best(tmp_path: Path, damage: str):
    path = tmp_path / "S000.json"
    atomic_write_text(path, json.dumps(seal({"params": {"a": 1}, "val_score": 0.5})))
    assert read_best(path)["val_score"] == 0.5
    DAMAGE[damage](path)
    with pytest.raises(DataError, match=re.escape(str(path))):
        read_best(path)


# ------------------------------------------------------------------------------------- full disk
def test_full_disk_during_a_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="no space left"):
        atomic_write_text(target, "new" * 1000)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


FULL_DISK_RUN = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG, not a kill
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.argv = ["alphaforge", *sys.argv[2:]]
    from alphaforge.cli import app
    app()
    """
)


def test_full_disk_run_gives_one_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_RUN, "20000", "run", str(cfg), "--out", "runs/r"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "OutputError" in last and "no space left" in last and "runs/r" in last, proc.stderr
    left = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert left == [], left  # no run, no temporary folder, no lock, no checkpoints


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_sealed_tuned_params_are_refused_by_per_symbol(tmp_path: Path, damage: str):
    path = tmp_path / "S000.json"
    atomic_write_text(path, json.dumps(seal({"params": {"n_estimators": 5}, "model": "lightgbm"})))
    assert read_tuned_params(path, "S000", "lightgbm") == {"n_estimators": 5}
    DAMAGE[damage](path)
    with pytest.raises(DataError, match="S000.json"):
        read_tuned_params(path, "S000", "lightgbm")


def test_altered_token_file_is_named(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-01", periods=50, freq="D").repeat(2),
            "symbol": ["A", "B"] * 50,
            "token": np.arange(100) % 7,
        }
    )
    path = write_tokens(tmp_path / "tokens.parquet", frame, {"kind": "bins"})
    back, meta = read_tokens(path)
    assert meta == {"kind": "bins"} and back["token"].tolist() == frame["token"].tolist()
    table = pq.read_table(path)
    tokens = table.column("token").to_numpy().copy()
    tokens[10] += 1  # a changed value in a file that still parses
    pq.write_table(table.set_column(2, "token", pa.array(tokens)), path)
    with pytest.raises(DataError, match="tokens.parquet.*altered"):
        read_tokens(path)
    truncate_file(path)
    with pytest.raises(DataError, match="tokens.parquet"):
        read_tokens(path)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer.pt"])
def test_damaged_saved_tokenizer_is_named(tmp_path: Path, name: str, damage: str) -> None:
    patches = np.random.default_rng(0).standard_normal((400, 1, 5)) * 0.01
    tok = VQVAETokenizer(random_state=0, codebook_size=8, max_epochs=1, min_steps=0, hidden=8)
    path = tok.fit(patches).save(tmp_path / "tok")
    load_tokenizer(path)
    DAMAGE[damage](path / name)
    with pytest.raises(DataError, match=re.escape(name)):
        load_tokenizer(path)


def test_a_run_builds_its_report_from_verified_files(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="alphaforge"):
        run_experiment(_config(tmp_path), out=tmp_path / "r")
    assert not [r for r in caplog.records if "manifest" in r.getMessage()]
    assert (tmp_path / "r" / artifacts.MANIFEST).is_file()
