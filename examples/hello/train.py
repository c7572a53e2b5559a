"""Fit y = w·x + b to a small CSV by mini-batch gradient descent, with checkpoints and resume.

What Train gives the process (SPEC §5):
  STORAGE_MOUNT_0_PATH       the data mount (a directory with train.csv, or the CSV itself)
  TRAIN_CHECKPOINT_DIR       where each epoch's checkpoint is written
  TRAIN_LOAD_CHECKPOINT_DIR  checkpoints of an earlier job or attempt to start from

Run it by hand too:  STORAGE_MOUNT_0_PATH=data TRAIN_CHECKPOINT_DIR=/tmp/ckpt python3 train.py
Uses numpy when it is installed, plain Python otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

try:
    import numpy as np
except ImportError:  # plain Python does the same arithmetic, just slower
    np = None

CHECKPOINT_GLOB = "epoch-*.json"
stop_requested = False


def on_sigterm(signum: int, frame: object) -> None:
    global stop_requested
    stop_requested = True


def nap(seconds: float) -> None:
    """Sleep, but wake at once when SIGTERM arrives."""
    deadline = time.monotonic() + seconds
    while not stop_requested and time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def read_csv(mount: Path) -> tuple[list[float], list[float]]:
    path = mount / "train.csv" if mount.is_dir() else mount
    xs, ys = [], []
    with path.open() as handle:
        next(handle)  # header: x,y
        for line in handle:
            if line.strip():
                x, y = line.split(",")
                xs.append(float(x))
                ys.append(float(y))
    return xs, ys


def newest_checkpoint(*dirs: str | None) -> dict | None:
    """The newest checkpoint in the first directory that has one."""
    for value in dirs:
        if not value or not Path(value).is_dir():
            continue
        found = sorted(Path(value).rglob(CHECKPOINT_GLOB), key=lambda p: p.name)
        if found:
            return json.loads(found[-1].read_text())
    return None


def save_checkpoint(directory: Path, state: dict) -> Path:
    """Write atomically: a reader (or a resumed run) never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"epoch-{state['epoch']:04d}.json"
    tmp = directory / f".{final.name}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, final)
    return final


def step(w: float, b: float, xs: list[float], ys: list[float], lr: float) -> tuple[float, float]:
    if np is not None:
        x, y = np.asarray(xs), np.asarray(ys)
        err = w * x + b - y
        return w - lr * 2 * float(np.mean(err * x)), b - lr * 2 * float(np.mean(err))
    n = len(xs)
    errs = [w * x + b - y for x, y in zip(xs, ys, strict=True)]
    grad_w = 2 * sum(e * x for e, x in zip(errs, xs, strict=True)) / n
    grad_b = 2 * sum(errs) / n
    return w - lr * grad_w, b - lr * grad_b


def mse(w: float, b: float, xs: list[float], ys: list[float]) -> float:
    if np is not None:
        return float(np.mean((w * np.asarray(xs) + b - np.asarray(ys)) ** 2))
    return sum((w * x + b - y) ** 2 for x, y in zip(xs, ys, strict=True)) / len(xs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=int(os.environ.get("BATCH_SIZE", "10")))
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per epoch, so there is time to watch")
    parser.add_argument("--fail-at-epoch", type=int, default=None, help="exit 1 when this epoch starts (demo)")
    parser.add_argument("--data", default=os.environ.get("STORAGE_MOUNT_0_PATH", "data"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)

    xs, ys = read_csv(Path(args.data))
    ckpt_dir = os.environ.get("TRAIN_CHECKPOINT_DIR")
    print(f"job {os.environ.get('TRAIN_JOB_ID', '-')} attempt {os.environ.get('TRAIN_ATTEMPT', '1')}: "
          f"{len(xs)} rows, {args.epochs} epochs, {'numpy' if np is not None else 'plain python'}", flush=True)

    w, b, start = 0.0, 0.0, 1
    state = newest_checkpoint(ckpt_dir, os.environ.get("TRAIN_LOAD_CHECKPOINT_DIR"))
    if state is not None:
        w, b, start = state["w"], state["b"], state["epoch"] + 1
        print(f"resumed from epoch {state['epoch']} (w={w:.4f}, b={b:.4f})", flush=True)

    order = list(range(len(xs)))
    for epoch in range(start, args.epochs + 1):
        if stop_requested:
            print(f"stopping before epoch {epoch} (SIGTERM); epoch {epoch - 1} is checkpointed", flush=True)
            return 143
        if args.fail_at_epoch is not None and epoch == args.fail_at_epoch:
            print(f"failing at epoch {epoch} as asked (--fail-at-epoch)", file=sys.stderr, flush=True)
            return 1
        random.Random(epoch).shuffle(order)
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            w, b = step(w, b, [xs[j] for j in batch], [ys[j] for j in batch], args.lr)
        loss = mse(w, b, xs, ys)
        print(f"epoch {epoch}/{args.epochs} loss={loss:.6f} w={w:.4f} b={b:.4f}", flush=True)
        if ckpt_dir:
            save_checkpoint(Path(ckpt_dir), {"epoch": epoch, "w": w, "b": b, "loss": loss})
        nap(args.sleep)

    print(f"done: y = {w:.4f}·x + {b:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
