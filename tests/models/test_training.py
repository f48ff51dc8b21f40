"""fit_torch: learning, early stopping, NaN guard, schedules, checkpoints, exact resume, compile."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from alphaforge.errors import ConfigError
from alphaforge.models.training import (
    BatchSource,
    History,
    TensorSource,
    TrainConfig,
    TrainingError,
    _make_optimizer,
    fit_torch,
    warmup_cosine,
)

SCRIPT = Path(__file__).with_name("_fit_script.py")


def linear_problem(n: int = 256, f: int = 4, seed: int = 0, noise: float = 0.05) -> TensorSource:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, f, generator=g)
    y = x @ torch.linspace(-1, 1, f) + noise * torch.randn(n, generator=g)
    return TensorSource({"x": x, "y": y})


def mse(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(net(batch["x"]).squeeze(-1), batch["y"])


def mlp(f: int = 4, seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(f, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1))


def cfg(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(max_epochs=5, batch_size=32, lr=1e-2, device="cpu", patience=0)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tensor_source_is_a_batch_source() -> None:
    src = linear_problem(10)
    assert isinstance(src, BatchSource)
    assert len(src) == 10 and src.device == torch.device("cpu")
    out = src.batch(torch.tensor([3, 1]))
    assert torch.equal(out["x"], src.tensors["x"][[3, 1]])
    with pytest.raises(ConfigError, match="first axis"):
        TensorSource({"a": torch.zeros(3), "b": torch.zeros(4)})


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")  # type: ignore[arg-type]


def test_loss_decreases_on_learnable_problem() -> None:
    net = mlp()
    hist = fit_torch(net, linear_problem(), mse, cfg(max_epochs=15), valid=linear_problem(seed=1))
    assert hist.train_loss[-1] < 0.1 * hist.train_loss[0]
    assert hist.valid_loss[-1] < 0.1 * hist.valid_loss[0]
    assert hist.steps == 15 * 8 and hist.skipped_steps == 0
    frame = hist.to_frame()
    columns = ["epoch", "train_loss", "valid_loss", "valid_metric", "lr", "epoch_time_s"]
    assert list(frame.columns) == columns and frame["valid_metric"].isna().all()
    assert len(frame) == 15


def test_no_valid_keeps_last_weights_and_nan_valid_loss() -> None:
    hist = fit_torch(mlp(), linear_problem(64), mse, cfg(max_epochs=3))
    assert all(math.isnan(v) for v in hist.valid_loss)
    assert hist.best_epoch == 2 and not hist.stopped_early


def test_early_stopping_restores_best_weights(tmp_path: Path) -> None:
    train = linear_problem()
    flipped = linear_problem(seed=1)  # valid target is the negated train relation: gets worse
    flipped.tensors["y"] = -flipped.tensors["y"]
    net = mlp()
    hist = fit_torch(
        net, train, mse, cfg(max_epochs=30, patience=3), valid=flipped, checkpoint_dir=tmp_path
    )
    best = min(range(len(hist.valid_loss)), key=hist.valid_loss.__getitem__)
    assert hist.stopped_early and hist.best_epoch == best
    assert len(hist.valid_loss) == best + 1 + 3
    best_ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best_ckpt["epoch"] == best and states_equal(best_ckpt["model"], net.state_dict())
    with torch.no_grad():
        restored = mse(net.eval(), flipped.tensors)
    assert restored.item() == pytest.approx(hist.valid_loss[best], rel=1e-5)


def test_valid_metric_replaces_the_valid_loss(tmp_path: Path) -> None:
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.9, 0.95])  # best after epoch 1; patience 2 stops at 3
    seen_modes: list[bool] = []

    def metric(model: nn.Module) -> float:
        seen_modes.append(model.training or torch.is_grad_enabled())
        return next(scores)

    reported: list[tuple[int, float]] = []
    net = mlp()
    config = cfg(max_epochs=6, patience=2, early_stopping_metric="rank_ic")
    hist = fit_torch(
        net,
        linear_problem(),
        mse,
        config,
        valid=linear_problem(seed=1),
        checkpoint_dir=tmp_path,
        valid_metric=metric,
        on_epoch=lambda e, v: reported.append((e, v)),
    )
    assert hist.valid_metric == [0.1, 0.5, 0.3, 0.2] and hist.best_epoch == 1
    assert hist.stopped_early and not any(seen_modes)  # eval mode, no grad
    assert all(math.isfinite(v) for v in hist.valid_loss)  # still recorded
    assert reported == [(0, -0.1), (1, -0.5), (2, -0.3), (3, -0.2)]  # lower is better
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 1 and best["valid_metric"] == 0.5
    assert states_equal(best["model"], net.state_dict())
    with pytest.raises(ConfigError, match="needs a valid_metric"):
        fit_torch(mlp(), linear_problem(), mse, config, valid=linear_problem(seed=1))
    plain = fit_torch(mlp(), linear_problem(), mse, cfg(max_epochs=2), valid=linear_problem(1))
    assert all(math.isnan(v) for v in plain.valid_metric)
    assert History(train_loss=[1.0, 2.0]).valid_metric  # old checkpoints: NaN per epoch


def test_nan_guard_skips_bad_steps() -> None:
    calls = {"n": 0}

    def flaky(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        loss = mse(net, batch)
        return loss * math.nan if calls["n"] in (2, 3) else loss

    net = mlp()
    hist = fit_torch(net, linear_problem(), flaky, cfg(max_epochs=2))
    assert hist.skipped_steps == 2 and hist.steps == 16
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert all(math.isfinite(v) for v in hist.train_loss)


def test_nan_guard_aborts_after_max_bad_steps() -> None:
    net = mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def broken(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return mse(net, batch) + torch.tensor(math.inf)

    with pytest.raises(TrainingError, match="4 consecutive non-finite steps"):
        fit_torch(net, linear_problem(), broken, cfg(max_bad_steps=4))
    assert states_equal(before, net.state_dict())  # no skipped step moved a weight


def test_no_weight_decay_on_biases_and_1d_params() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    opt = _make_optimizer(net, cfg(weight_decay=0.1), torch.device("cpu"))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_lr_schedules(schedule: str) -> None:
    # batch_size >= n: one step per epoch, so History.lr is the per-step trajectory
    hist = fit_torch(
        mlp(),
        linear_problem(64),
        mse,
        cfg(max_epochs=20, batch_size=64, lr=0.1, warmup_frac=0.1, schedule=schedule),
    )
    lr = hist.lr
    if schedule == "cosine":  # 2 warmup steps, then cosine from the peak towards 0
        assert lr[:3] == pytest.approx([0.05, 0.1, 0.1])
        assert lr == pytest.approx([0.1 * warmup_cosine(s, 20, 2) for s in range(20)])
        assert all(a > b for a, b in zip(lr[2:], lr[3:], strict=False))
        assert lr[-1] < 0.002
    elif schedule == "onecycle":  # starts at lr / 25, peaks at lr, anneals far below the start
        assert lr[0] == pytest.approx(0.1 / 25)
        assert max(lr) == pytest.approx(0.1, rel=1e-3) and lr.index(max(lr)) <= 2
        assert lr[-1] < lr[0] / 100
    else:
        assert lr == pytest.approx([0.1] * 20)


def test_same_seed_same_weights_other_seed_differs() -> None:
    runs = []
    for seed in (3, 3, 4):
        net = mlp(dropout=0.3)  # same init each time; dropout and batch order follow `seed`
        fit_torch(net, linear_problem(), mse, cfg(max_epochs=2), seed=seed)
        runs.append(net.state_dict())
    assert states_equal(runs[0], runs[1])
    assert not states_equal(runs[0], runs[2])


def test_fit_does_not_touch_global_torch_rng() -> None:
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    fit_torch(mlp(dropout=0.5), linear_problem(64), mse, cfg(max_epochs=1))
    torch.manual_seed(99)  # mlp() reseeds: re-seed, then compare the next draws
    assert torch.equal(torch.rand(3), expected)


def test_extra_loss_is_optimised_but_not_reported() -> None:
    plain, shrunk = mlp(), mlp()
    steps: list[int] = []

    def l1(model: nn.Module, step: int) -> torch.Tensor:
        steps.append(step)
        return 1.0 * model[0].weight.abs().sum()

    h_plain = fit_torch(plain, linear_problem(), mse, cfg(max_epochs=3))
    h_shrunk = fit_torch(shrunk, linear_problem(), mse, cfg(max_epochs=3), extra_loss=l1)
    assert steps == list(range(24))
    assert shrunk[0].weight.abs().sum() < 0.7 * plain[0].weight.abs().sum()
    # the reported loss is the data loss alone (the penalty alone would be > 1)
    assert h_shrunk.train_loss[-1] < h_plain.train_loss[0]


def test_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    for schedule in ("cosine", "onecycle"):
        d = tmp_path / schedule
        fit_torch(
            mlp(dropout=0.1),
            linear_problem(),
            mse,
            cfg(max_epochs=2, schedule=schedule),
            valid=linear_problem(seed=1),
            checkpoint_dir=d,
        )
        last = torch.load(d / "last.pt", weights_only=True)
        best = torch.load(d / "best.pt", weights_only=True)
        assert last["epoch"] == 2 and last["step"] == 16 and last["step_in_epoch"] == 0
        for key in (
            "model",
            "optimizer",
            "scheduler",
            "perm_state",
            "best_state",
            "rng",
            "history",
        ):
            assert key in last
        assert set(last["rng"][0]) == {"torch", "cuda", "numpy", "python"}
        assert set(best) == {"model", "epoch", "step", "valid_loss", "valid_metric"}
        assert not list(d.glob("*.tmp"))  # atomic writes leave no temp files


def test_max_steps_stops_mid_epoch_and_resume_in_process_matches(tmp_path: Path) -> None:
    config = cfg(max_epochs=3, schedule="onecycle")
    full = mlp(dropout=0.2)
    h_full = fit_torch(full, linear_problem(), mse, config, valid=linear_problem(seed=1), seed=5)
    part = mlp(dropout=0.2)
    h_part = fit_torch(
        part,
        linear_problem(),
        mse,
        config,
        valid=linear_problem(seed=1),
        seed=5,
        checkpoint_dir=tmp_path,
        max_steps=11,
    )
    assert h_part.steps == 11 and len(h_part.train_loss) == 1
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step_in_epoch"] == 3
    resumed = mlp(dropout=0.2)  # fresh weights: everything must come from last.pt
    h_res = fit_torch(
        resumed,
        linear_problem(),
        mse,
        config,
        valid=linear_problem(seed=1),
        seed=5,
        checkpoint_dir=tmp_path,
        resume=True,
    )
    assert states_equal(full.state_dict(), resumed.state_dict())
    assert h_res.train_loss == h_full.train_loss and h_res.lr == h_full.lr


def test_resume_rejects_a_checkpoint_from_other_data(tmp_path: Path) -> None:
    fit_torch(mlp(), linear_problem(), mse, cfg(max_epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(TrainingError, match="samples"):
        fit_torch(
            mlp(), linear_problem(100), mse, cfg(max_epochs=2), checkpoint_dir=tmp_path, resume=True
        )
    with pytest.raises(TrainingError, match="checkpoint_dir"):
        fit_torch(mlp(), linear_problem(), mse, cfg(), resume=True)


def _launch(out: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()


def test_resume_in_fresh_process_is_bit_identical(tmp_path: Path) -> None:
    # 224 samples / batch 32 = 7 steps per epoch, 4 epochs; stop at 10 (mid-epoch) and 14 (boundary)
    full = _launch(tmp_path / "full.pt")
    stops = {
        k: _launch(
            tmp_path / f"stop{k}.pt", "--ckpt", str(tmp_path / f"ck{k}"), "--max-steps", str(k)
        )
        for k in (10, 14)
    }
    _wait(full, *stops.values())
    resumed = {
        k: _launch(tmp_path / f"res{k}.pt", "--ckpt", str(tmp_path / f"ck{k}"), "--resume")
        for k in stops
    }
    _wait(*resumed.values())
    ref = torch.load(tmp_path / "full.pt", weights_only=True)
    for k in stops:
        stopped = torch.load(tmp_path / f"stop{k}.pt", weights_only=True)
        assert stopped["history"]["steps"] == k
        got = torch.load(tmp_path / f"res{k}.pt", weights_only=True)
        assert states_equal(got["model"], ref["model"]), f"weights differ after resuming at {k}"
        for key in ("train_loss", "valid_loss", "lr", "best_epoch", "steps", "skipped_steps"):
            assert got["history"][key] == ref["history"][key], (k, key)


def test_compile_trains_on_cpu() -> None:
    if not (hasattr(torch, "compile") and torch._dynamo.is_dynamo_supported()):
        pytest.skip("torch.compile is not supported on this platform")
    eager, compiled = mlp(), mlp()
    data = linear_problem(64)
    h_eager = fit_torch(eager, data, mse, cfg(max_epochs=2, drop_last=True))
    h_comp = fit_torch(compiled, data, mse, cfg(max_epochs=2, drop_last=True, compile=True))
    assert isinstance(h_comp, History) and h_comp.steps == 4
    assert h_comp.train_loss == pytest.approx(h_eager.train_loss, rel=1e-4)
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict())
