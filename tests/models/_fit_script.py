"""Run fit_torch on a fixed tiny problem in a fresh process (resume and torchrun-style DDP tests).

Usage: python _fit_script.py OUT [--ckpt DIR] [--max-steps K] [--resume] [--batch-size B]
                             [--dropout P] [--epochs E]

Writes ``{"model": state_dict, "history": dict}`` to OUT with torch.save (rank 0 only). When
``WORLD_SIZE`` > 1 in the environment it joins the gloo group first, as under torchrun.
"""

from __future__ import annotations

import argparse
import dataclasses
import random

import numpy as np
import torch
from torch import nn

from alphaforge.models.training import TensorSource, TrainConfig, fit_torch
from alphaforge.utils.device import distributed_context, rank


def problem() -> tuple[TensorSource, TensorSource]:
    """A learnable nonlinear regression: 224 train and 64 valid samples of 6 features."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(288, 6, generator=g)
    y = torch.tanh(x @ torch.randn(6, generator=g)) + 0.1 * torch.randn(288, generator=g)
    return TensorSource({"x": x[:224], "y": y[:224]}), TensorSource({"x": x[224:], "y": y[224:]})


def make_net(dropout: float) -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Dropout(dropout), nn.Linear(16, 1))


def loss_fn(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(net(batch["x"]).squeeze(-1), batch["y"])


def extra_loss(model: nn.Module, step: int) -> torch.Tensor:
    # draws from python and numpy RNGs, so a resume that forgot to restore them would diverge
    scale = 1e-4 * (random.random() + float(np.random.rand())) * min(1.0, step / 10)
    return scale * model[0].weight.abs().sum()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--ckpt")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--schedule", default="cosine")
    args = parser.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    np.random.seed(0)
    train, valid = problem()
    net = make_net(args.dropout)
    config = TrainConfig(
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=3e-2,
        warmup_frac=0.1,
        patience=0,
        device="cpu",
        schedule=args.schedule,  # type: ignore[arg-type]
    )
    with distributed_context():
        history = fit_torch(
            net,
            train,
            loss_fn,
            config,
            valid=valid,
            seed=11,
            checkpoint_dir=args.ckpt,
            resume=args.resume,
            max_steps=args.max_steps,
            extra_loss=extra_loss,
        )
        if rank() == 0:
            torch.save(
                {"model": net.state_dict(), "history": dataclasses.asdict(history)}, args.out
            )


if __name__ == "__main__":
    main()
