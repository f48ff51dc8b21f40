"""Chaos battery: kills, races, corruptions and a full disk against every output alphaforge writes.

Run from the repository root:  .venv/bin/python benchmarks/chaos.py [--kills 5] [--writers 4]

Everything runs in a fresh temporary folder on a small synthetic panel (8 symbols, 420 bars):

1. **Kills during ``run``** — ``alphaforge run`` (LightGBM and a small LSTM that checkpoints
   every epoch, 2 folds) is SIGKILLed ``--kills`` times at random moments between start-up and
   the uninterrupted run's duration. After each kill: files left torn (nothing may be in the run
   folder unless it is complete and verifies); then ``run --resume``; its predictions must equal
   the uninterrupted run's, and no temporary or lock file may remain.
2. **Kills during ``tune``** — ``alphaforge tune`` SIGKILLed ``--kills`` times mid-study, then
   one more ``tune``: no trial left RUNNING, the stored best verifies and is a real trial's
   score, no temporary or lock file left.
3. **Races** — ``--writers`` processes at once per output kind: ``run --out`` one folder
   (exactly one may succeed), ``fit --out`` one bundle (same), ``run`` with an automatic name
   (all succeed, all different folders), ``backtest --save`` on one run (all succeed in turn, the
   manifest stays true), and ``tune`` on one symbol and root with the gate's read-compare-write
   window widened by 0.4 s (the stored best must be the best promoted score).
4. **Corruption** — every artifact kind read back (8 run files, saved LightGBM and LSTM model
   files, 4 bundle files, a checkpoint, a tuned record) truncated to half and bit-flipped: each
   must give one error naming the file (a checkpoint: training starts again and says so).
5. **Full disk** — ``run`` and ``fit`` writing into a 64 KiB tmpfs (or, where mounting is not
   allowed, under a 20 kB file-size limit): one clear error, nothing left behind.

The table counts what was tried and what went wrong; "data lost" sums torn or half-written
outputs, silently replaced results, resumed predictions that differ, and corruptions accepted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import yaml

from alphaforge import artifacts
from alphaforge.bundle import load_bundle
from alphaforge.errors import DataError
from alphaforge.models.base import BaseForecaster
from alphaforge.models.training import TensorSource, TrainConfig, fit_torch
from alphaforge.report.load import load_run
from alphaforge.testing import FILE_DAMAGE
from alphaforge.tuning.results import read_best
from alphaforge.utils.integrity import seal
from alphaforge.utils.io import atomic_write_text

CLI = [sys.executable, "-c", "import sys; from alphaforge.cli import app; app()"]
DATA = "synthetic:n_symbols=8,n_bars=420,seed=1,strength=0.15"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
TUNE = ["--data", DATA, "--model", "lightgbm", "--symbols", "S000", "--seed", "0"]
SLOW_GATE = textwrap.dedent(
    """
    import sys, time
    from alphaforge.tuning import results
    read = results.read_best
    def slow(path):
        out = read(path)
        time.sleep(0.4)
        return out
    results.read_best = slow
    from alphaforge.cli import app
    app()
    """
)


@dataclass
class Row:
    scenario: str
    tried: int = 0
    clean: int = 0  # ended as designed: success, or one clear error and nothing half-written
    lost: int = 0  # torn files, silently replaced results, differing resumes, accepted damage
    leftovers: int = 0  # temporary or lock files remaining after the next command
    note: str = ""


def config(root: Path, *, lstm: bool, n_estimators: int = 30) -> Path:
    models = [{"name": "lightgbm", "params": {"n_estimators": n_estimators}}]
    if lstm:
        models.append(
            {
                "name": "lstm",
                "params": {"lookback": 8, "hidden": 16, "max_epochs": 6, "device": "cpu"},
            }
        )
    cfg = {
        "name": "chaos",
        "seed": 0,
        "data": {"source": DATA},
        "label": {"kind": "forward_return", "horizon": 1},
        "split": {"train": 250, "valid": 40, "test": 40, "n_folds": 2},
        "models": models,
        "output_dir": str(root / "auto"),
    }
    path = root / f"chaos-{'lstm' if lstm else 'trees'}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def cli(*args: str, cwd: Path, pre: list[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*(pre or CLI), *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err.strip()


def leftovers(root: Path) -> int:
    return sum(1 for p in root.rglob(".*") if p.name.endswith((".tmp", ".lock")))


def verifies(run: Path) -> bool:
    try:
        load_run(run)
    except DataError:
        return False
    return True


def kill_at(proc: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds; whether it was still running."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


# ----------------------------------------------------------------------------------------- kills
def kills_during_run(root: Path, kills: int, rng: random.Random) -> Row:
    row = Row("SIGKILL during run, then --resume")
    cfg = config(root, lstm=True)
    t0 = time.perf_counter()
    rc, err = finish(cli("run", str(cfg), "--out", "ref", cwd=root))
    assert rc == 0, err
    span = time.perf_counter() - t0
    ref = pd.read_parquet(root / "ref" / artifacts.PREDICTIONS)
    mid = 0
    for k in range(kills):
        out = f"killed-{k}"
        row.tried += 1
        at = rng.uniform(1.5, 0.8 * span)
        running = kill_at(cli("run", str(cfg), "--out", out, cwd=root), at)
        run = root / out
        if run.exists():  # the kill came after the run was complete: it must verify
            torn, rc = not verifies(run), 0
        else:  # nothing may be there; the next command resumes
            torn = False
            rc, _ = finish(cli("run", str(cfg), "--out", out, "--resume", cwd=root))
        same = rc == 0 and pd.read_parquet(run / artifacts.PREDICTIONS).equals(ref)
        row.lost += int(torn or not same)
        row.clean += int(not torn and same)
        row.leftovers += leftovers(root) + int(artifacts.checkpoint_root(run).exists())
        mid += int(running)
    row.note = f"{mid} of {kills} kills mid-run (at 1.5-{0.8 * span:.0f} s of a {span:.0f} s run)"
    return row


def kills_during_tune(root: Path, kills: int, rng: random.Random) -> Row:
    row = Row("SIGKILL during tune, then tune")
    args = ["tune", *TUNE, "--trials", "6", "--root", "tuning"]
    for _ in range(kills):
        row.tried += 1
        kill_at(cli(*args, cwd=root), rng.uniform(2.0, 8.0))
    rc, err = finish(cli("tune", *TUNE, "--trials", "2", "--root", "tuning", cwd=root))
    best = root / "tuning" / "hyperparams" / "best" / "S000.json"
    ok = rc == 0
    try:
        record = read_best(best)
        scores = _trial_scores(root / "tuning")
        ok = ok and record is not None and any(abs(record["val_score"] - s) < 1e-12 for s in scores)
        running = _running_trials(root / "tuning")
    except DataError:
        ok, running = False, -1
    row.clean = row.tried if ok and running == 0 else 0
    row.lost = 0 if ok else 1
    row.leftovers = leftovers(root / "tuning")
    row.note = f"stale RUNNING trials after: {running}" if rc == 0 else err[-200:]
    return row


def _study(root: Path):  # noqa: ANN202 - optuna is imported lazily with the tuning package
    import optuna

    return optuna.load_study(study_name="S000:lightgbm", storage=f"sqlite:///{root}/optuna.db")


def _trial_scores(root: Path) -> list[float]:
    return [t.value for t in _study(root).trials if t.value is not None]


def _running_trials(root: Path) -> int:
    return sum(t.state.name == "RUNNING" for t in _study(root).trials)


# ----------------------------------------------------------------------------------------- races
def race(n: int, make: Callable[[int], subprocess.Popen[str]]) -> list[tuple[int, str]]:
    procs = [make(i) for i in range(n)]
    return [finish(p) for p in procs]


def races(root: Path, writers: int) -> list[Row]:
    cfg = config(root, lstm=False)
    rows = []
    # one --out, many writers: exactly one succeeds, the others fail with one line
    for kind, cmd in (("run --out", "run"), ("fit --out (bundle)", "fit")):
        row = Row(f"{writers} x {kind} to one path")
        for trial in range(2):
            out = f"race-{cmd}-{trial}"
            got = race(writers, lambda _i, c=cmd, o=out: cli(c, str(cfg), "--out", o, cwd=root))
            wins = sum(rc == 0 for rc, _ in got)
            clean_losses = sum(rc == 2 and _one_error(e) for rc, e in got if rc)
            intact = verifies(root / out) if cmd == "run" else _bundle_ok(root / out)
            row.tried += writers
            row.clean += wins + clean_losses if wins == 1 and intact else 0
            row.lost += int(wins != 1 or not intact)
        row.leftovers = leftovers(root)
        rows.append(row)
    row = Row(f"{writers} x run, automatic names")
    got = race(writers, lambda _i: cli("run", str(cfg), cwd=root))
    made = [p for p in (root / "auto").iterdir() if not p.name.startswith(".")]
    row.tried = writers
    row.clean = sum(rc == 0 for rc, _ in got) if len(made) == writers else 0
    row.lost = writers - len(made)
    row.leftovers = leftovers(root / "auto")
    rows.append(row)
    row = Row(f"{writers} x backtest --save, one run")
    got = race(
        writers,
        lambda i: cli("backtest", "race-run-0", "--costs-bps", str(i + 1), "--save", cwd=root),
    )
    ok = verifies(root / "race-run-0")
    row.tried, row.clean = writers, sum(rc == 0 for rc, _ in got) if ok else 0
    row.lost, row.leftovers = int(not ok), leftovers(root)
    rows.append(row)
    rows.append(gate_race(root, writers))
    return rows


def _one_error(err: str) -> bool:
    """The command ended with one error line (progress records may come before it)."""
    last = err.splitlines()[-1] if err else ""
    return last.startswith("OutputError: ") and "Traceback" not in err


def _bundle_ok(path: Path) -> bool:
    try:
        load_bundle(path)
    except DataError:
        return False
    return True


def gate_race(root: Path, writers: int) -> Row:
    row = Row(f"{writers} x tune, one symbol and root")
    pre = [sys.executable, "-c", SLOW_GATE]
    for trial in range(2):
        tune_root = root / f"gate-{trial}"

        def make(i: int, r: Path = tune_root) -> subprocess.Popen[str]:
            args = ["tune", *TUNE[:-1], str(i), "--trials", "2", "--root", str(r)]
            return cli(*args, "--storage", f"journal:{r}/study-{i}.journal", cwd=root, pre=pre)

        got = race(writers, make)
        promoted = []
        for path in (tune_root / "results").glob("tune_*.json"):
            for res in json.loads(path.read_text())["results"]:
                if res["promoted"]:
                    promoted.append(res["new_score"])
        stored = read_best(tune_root / "hyperparams" / "best" / "S000.json")
        ok = all(rc == 0 for rc, _ in got) and stored is not None
        ok = ok and stored["val_score"] == min(promoted)
        row.tried += writers
        row.clean += writers if ok else 0
        row.lost += int(not ok)
        row.leftovers += leftovers(tune_root)
    row.note = "gate window widened by 0.4 s"
    return row


# ------------------------------------------------------------------------------------ corruption
DAMAGE = FILE_DAMAGE


def corruption(root: Path) -> Row:
    row = Row("truncated / bit-flipped artifacts")
    run = root / "ref"  # LightGBM + LSTM, from the kill scenario
    # (label, folder copied before damaging, file inside it, how the library reads the folder)
    cases: list[tuple[str, Path, str, Callable[[Path], object]]] = [
        (name, run, name, load_run)
        for name in (
            artifacts.CONFIG,
            artifacts.METRICS,
            artifacts.PREDICTIONS,
            artifacts.FOLDS,
            artifacts.RETURNS,
            artifacts.BACKTEST,
            artifacts.HISTORY,
            artifacts.MANIFEST,
        )
    ]
    for model, files in (("lightgbm", ("meta.json", "model.txt")), ("lstm", ("weights.pt",))):
        mdir = artifacts.model_dir(run, model, 0)
        cases += [(f"{model} {name}", mdir, name, BaseForecaster.load) for name in files]
    rc, err = finish(cli("fit", str(config(root, lstm=False)), "--out", "bundle", cwd=root))
    assert rc == 0, err
    for name in ("manifest.json", "config.yaml", "models/lightgbm/model.txt"):
        cases.append((f"bundle {name}", root / "bundle", name, load_bundle))
    record = root / "record" / "S000.json"
    atomic_write_text(record, json.dumps(seal({"params": {}, "val_score": 0.5, "metric": "m"})))
    cases.append(("tuned record", record.parent, record.name, lambda d: read_best(d / "S000.json")))
    for label, src, name, read in cases:
        for how, damage in DAMAGE.items():
            row.tried += 1
            with _copy(src) as copy:
                damage(copy / name)
                try:
                    read(copy)
                    row.lost += 1  # accepted: silently trusted
                    row.note += f" ACCEPTED {label} ({how});"
                except DataError as exc:
                    named = Path(name).name in str(exc) and len(str(exc).splitlines()) == 1
                    row.clean += int(named)
    for damage in DAMAGE.values():
        row.tried += 1
        row.clean += int(_checkpoint_case(root, damage))
    row.note = row.note or f"{len(cases) + 1} artifact kinds x {len(DAMAGE)} damages"
    return row


@contextlib.contextmanager
def _copy(src: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=src.parent.parent) as tmp:
        dst = Path(tmp) / src.name
        shutil.copytree(src, dst)
        yield dst


def _checkpoint_case(root: Path, damage: Callable[[Path], None]) -> bool:
    """A damaged ``last.pt``: resume says so and ends where an uninterrupted fit ends."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    data = TensorSource({"x": x, "y": x.sum(1)})

    def net() -> torch.nn.Module:
        torch.manual_seed(1)
        return torch.nn.Linear(4, 1)

    def loss(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((m(b["x"]).squeeze(-1) - b["y"]) ** 2).mean()

    cfg = TrainConfig(max_epochs=2, batch_size=32, device="cpu")
    ref = net()
    fit_torch(ref, data, loss, cfg, seed=3)
    with tempfile.TemporaryDirectory(dir=root) as ckpt:
        fit_torch(net(), data, loss, cfg, seed=3, checkpoint_dir=ckpt, max_steps=5)
        damage(Path(ckpt) / "last.pt")
        said = _Capture()
        logging.getLogger("alphaforge").addHandler(said)
        try:
            again = net()
            fit_torch(again, data, loss, cfg, seed=3, checkpoint_dir=ckpt, resume=True)
        finally:
            logging.getLogger("alphaforge").removeHandler(said)
    same = all(torch.equal(a, b) for a, b in zip(ref.parameters(), again.parameters(), strict=True))
    return same and any("last.pt" in m for m in said.messages)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# ------------------------------------------------------------------------------------- full disk
def full_disk(root: Path) -> Row:
    mnt = root / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    how = "64 KiB tmpfs" if mounted.returncode == 0 else "20 kB file-size limit"
    row = Row(f"full disk ({how})")
    pre = CLI
    if mounted.returncode != 0:
        pre = [sys.executable, "-c", _FSIZE, "20000"]
    cfg = config(root, lstm=True)
    try:
        for cmd in ("run", "fit"):
            row.tried += 1
            rc, err = finish(cli(cmd, str(cfg), "--out", str(mnt / cmd), cwd=root, pre=pre))
            last = err.splitlines()[-1] if err else ""
            clean = rc == 2 and _one_error(err) and "no space left" in last
            clean = clean and not list(mnt.iterdir())
            row.clean += int(clean)
            row.lost += int(rc != 0 and bool(list(mnt.iterdir())))  # a partial output left
            if rc == 0:
                row.note += f"{cmd} fitted in the space; "
                shutil.rmtree(mnt / cmd)
            row.leftovers += sum(1 for _ in mnt.iterdir())
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(mnt)], check=False)
    return row


_FSIZE = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(sys.argv.pop(1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from alphaforge.cli import app
    app()
    """
)


# ---------------------------------------------------------------------------------------- driver
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=5, help="SIGKILLs per killed command")
    ap.add_argument("--writers", type=int, default=4, help="concurrent writers per output kind")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alphaforge-chaos-") as tmp:
        root = Path(tmp)
        rows = [kills_during_run(root, args.kills, rng), kills_during_tune(root, args.kills, rng)]
        rows += races(root, args.writers)
        rows.append(corruption(root))
        rows.append(full_disk(root))
    print(f"\nchaos battery, {time.perf_counter() - t0:.0f} s, {os.cpu_count()} cores\n")
    head = f"{'scenario':<40} {'tried':>5} {'clean':>5} {'lost':>4} {'left':>4}  note"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.scenario:<40} {r.tried:>5} {r.clean:>5} {r.lost:>4} {r.leftovers:>4}  {r.note}")
    total = sum(r.lost for r in rows)
    print(f"\ndata lost: {total}")


if __name__ == "__main__":
    main()
