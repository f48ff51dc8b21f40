"""fit_torch under a torchrun-style launch: 2 CPU processes (gloo) match one process with the same
global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("_fit_script.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(out: Path, *args: str, rank: int | None = None, port: int = 0) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    if rank is not None:  # exactly what torchrun --standalone --nproc_per_node 2 exports
        env.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_two_gloo_ranks_match_single_process(tmp_path: Path) -> None:
    port = _free_port()
    # dropout off: each rank draws its own masks (seed + rank), a single process cannot mimic that
    ranks = [
        _run(
            tmp_path / "ddp.pt",
            "--batch-size",
            "32",
            "--dropout",
            "0",
            "--ckpt",
            str(tmp_path / "ck"),
            rank=r,
            port=port,
        )
        for r in range(2)
    ]
    single = _run(tmp_path / "single.pt", "--batch-size", "64", "--dropout", "0")
    for p in (*ranks, single):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    ref = torch.load(tmp_path / "single.pt", weights_only=True)
    assert (
        ddp["history"]["steps"] == ref["history"]["steps"] == 16
    )  # 224 / 64 -> 4 steps x 4 epochs
    assert ddp["history"]["best_epoch"] == ref["history"]["best_epoch"]
    for name, value in ref["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, atol=1e-5, rtol=1e-5)
    for key in ("train_loss", "valid_loss"):
        torch.testing.assert_close(
            torch.tensor(ddp["history"][key]),
            torch.tensor(ref["history"][key]),
            atol=1e-6,
            rtol=1e-5,
        )
    # rank 0 alone wrote the checkpoint, and it records both ranks' RNG states
    last = torch.load(tmp_path / "ck" / "last.pt", weights_only=True)
    assert last["world_size"] == 2 and len(last["rng"]) == 2
