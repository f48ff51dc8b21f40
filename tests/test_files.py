"""What alphaforge leaves on disk: file modes under the umask, leftovers of killed writers, where
``tune`` writes by default, and the error for a config's missing data file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alphaforge.bundle import fit as fit_bundle
from alphaforge.cli import app
from alphaforge.errors import DataError
from alphaforge.registry import get_model
from alphaforge.run import run_experiment
from alphaforge.testing import tiny_problem
from alphaforge.tuning import TuneConfig
from alphaforge.utils.io import atomic_write_text, make_temp_dir, remove_stale_temp

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"
# (umask, file mode, folder mode): what open() and mkdir() give, and what alphaforge must give
UMASKS = [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]


def _small_config(**data: object) -> dict:
    """configs/tiny.yaml with one small LightGBM: a run of about a second."""
    cfg = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    cfg["models"] = [{"name": "lightgbm", "params": {"n_estimators": 5, "num_leaves": 4}}]
    cfg["data"].update(data)
    return cfg


@pytest.fixture(params=UMASKS, ids=["umask022", "umask077"])
def umask(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    """Run the test under a umask; yields the expected (file, folder) modes."""
    mask, file_mode, dir_mode = request.param
    old = os.umask(mask)
    try:
        yield file_mode, dir_mode
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, set[str]]:
    """``{"files": {...}, "folders": {...}}``: the permission bits (octal) found under ``root``."""
    found: dict[str, set[str]] = {"files": set(), "folders": {oct(root.stat().st_mode & 0o777)}}
    for p in root.rglob("*"):
        found["folders" if p.is_dir() else "files"].add(oct(p.stat().st_mode & 0o777))
    return found


def _expected(modes: tuple[int, int]) -> dict[str, set[str]]:
    return {"files": {oct(modes[0])}, "folders": {oct(modes[1])}}


# ------------------------------------------------------------------------------ file modes
def test_atomic_write_and_temp_dir_follow_the_umask(tmp_path, umask):
    atomic_write_text(tmp_path / "a" / "b.txt", "x")
    assert oct((tmp_path / "a" / "b.txt").stat().st_mode & 0o777) == oct(umask[0])
    assert oct(make_temp_dir(tmp_path / "c").stat().st_mode & 0o777) == oct(umask[1])


def test_saved_model_follows_the_umask(tmp_path, umask):
    X, y = tiny_problem(n_symbols=3, n_bars=80)
    model = get_model("lightgbm").from_params({"n_estimators": 5, "num_leaves": 4}).fit(X, y)
    path = model.save(tmp_path / "models" / "lgbm")
    assert _modes(path) == _expected(umask)
    assert {p.name for p in path.iterdir()} >= {"meta.json"}


def test_run_directory_follows_the_umask(tmp_path, umask):
    run = run_experiment(_small_config(), out=tmp_path / "runs" / "t").run_dir
    assert (run / "report.html").is_file() and (run / "models").is_dir()
    assert _modes(run) == _expected(umask)


def test_bundle_follows_the_umask(tmp_path, umask):
    (killed,) = _dead_temp_dirs(tmp_path / "bundles" / "b")  # a save killed before its rename
    path = fit_bundle(_small_config()).save(tmp_path / "bundles" / "b")
    assert (path / "manifest.json").is_file()
    assert _modes(path) == _expected(umask)
    assert not killed.exists() and [p.name for p in path.parent.iterdir()] == ["b"]


# ------------------------------------------------------------------------ leftovers of killed runs
def _dead_temp_dirs(*dests: Path) -> list[Path]:
    """Temp folders for ``dests`` made by one process that has exited (as if killed)."""
    code = (
        "import sys; from alphaforge.utils.io import make_temp_dir as m; "
        "print(*(m(d) for d in sys.argv[1:]), sep=chr(10))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, dests)], check=True, capture_output=True, text=True
    )
    made = [Path(line) for line in out.stdout.splitlines()]
    for tmp, dest in zip(made, dests, strict=True):
        assert tmp.is_dir() and tmp.name.startswith(f".{dest.name}.") and tmp.suffix == ".tmp"
    return made


def _other_host(tmp: Path) -> Path:
    """The same dead writer's folder as if written on another machine of a shared file system."""
    stem, _, rest = tmp.name.removeprefix(".").partition(".")
    other = tmp.with_name(f".{stem}.00000000-{rest.partition('-')[2]}")
    tmp.rename(other)
    return other


def test_remove_stale_temp_only_takes_dead_local_writers(tmp_path):
    live = make_temp_dir(tmp_path / "run3")  # this process: alive
    dead, other = _dead_temp_dirs(tmp_path / "run", tmp_path / "run2")
    (dead / "inner").mkdir()
    (dead / "inner" / "f.txt").write_text("half-written")
    other = _other_host(other)
    keep = [tmp_path / ".hidden.tmp", tmp_path / "run.ckpt"]  # not ours / needed by --resume
    keep[0].write_text("x")
    keep[1].mkdir()
    assert remove_stale_temp(tmp_path, recursive=False) == [dead]
    assert not dead.exists()
    assert other.is_dir() and live.is_dir() and all(p.exists() for p in keep)


def test_next_run_removes_the_folder_of_a_killed_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(_small_config()), encoding="utf-8")
    # killed (SIGKILL: no cleanup of any kind) at its first progress report, mid-run
    code = (
        "import os, signal, sys; from alphaforge.run import run_experiment; "
        "run_experiment(sys.argv[1], out='runs/killed', "
        "progress=lambda *a: os.kill(os.getpid(), signal.SIGKILL))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    left = sorted(
        (p for p in Path("runs").iterdir() if p.name.startswith(".killed.")), key=lambda p: p.suffix
    )
    # its build folder, and its lock file (free: the kernel released the lock with the process)
    assert [p.suffix for p in left] == [".lock", ".tmp"] and left[1].is_dir()
    live = make_temp_dir(Path("runs") / "other")  # a run of a live process: left alone
    ckpt = Path("runs") / "killed.ckpt" / "lightgbm"  # what --resume needs: kept
    ckpt.mkdir(parents=True)
    run_experiment(config, out="runs/next")
    assert sorted(p.name for p in Path("runs").iterdir()) == sorted(
        ["next", "killed.ckpt", live.name]
    )


def test_model_save_removes_a_killed_save(tmp_path):
    (dead,) = _dead_temp_dirs(tmp_path / "lgbm")
    X, y = tiny_problem(n_symbols=3, n_bars=80)
    get_model("lightgbm").from_params({"n_estimators": 5}).fit(X, y).save(tmp_path / "lgbm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lgbm"]
    assert not dead.exists()


# ------------------------------------------------------------------------ tuning's default root
def test_tune_writes_under_tuning_by_default():
    assert TuneConfig().root == Path("tuning")
    shipped = yaml.safe_load((ROOT / "configs" / "tune.yaml").read_text(encoding="utf-8"))
    assert shipped["root"] == "tuning"


# --------------------------------------------------------------- a config's missing data file
def test_missing_data_source_names_the_working_directory_and_data_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _small_config(source="../shared/data/panel.parquet")
    with pytest.raises(DataError) as err:
        run_experiment(cfg, out="runs/t")
    msg = str(err.value)
    assert msg.startswith("../shared/data/panel.parquet: file not found")
    assert f"resolved against the working directory {tmp_path}, not the config's" in msg
    assert "--data my_panel.parquet" in msg
    assert not Path("runs").exists()  # refused before anything was written


def test_cli_missing_data_source_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_small_config(source="nope.parquet")), encoding="utf-8")
    res = CliRunner().invoke(app, ["run", str(config)])
    assert res.exit_code == 2
    assert "nope.parquet: file not found" in res.output and "--data" in res.output
