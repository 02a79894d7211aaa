#!/usr/bin/python3
"""Measure the PyTorch reference's data pipeline: DataLoader + SimCLR transforms.

The counterpart of tools/bench/augbench (simclr-ort's loader). Use Debian's
/usr/bin/python3:

    /usr/bin/python3 tools/bench/torch_aug.py --data folder:DIR --size 224 \\
        --batch 64 --workers 1,2 --seconds 10 [--json]

--data is folder:DIR (torchvision ImageFolder, default PIL loader: decode and
convert to RGB) or fmnist:DIR (torchvision FashionMNIST from the idx .gz
files, held in memory, converted to RGB; see torch_train.py). The transform
is the reference's SimCLR train transform with two views per image
(torch_train.simclr_transform). For each worker count: a DataLoader (batch,
shuffled, drop_last, num_workers, persistent workers; a small dataset is
repeated so that an epoch holds at least --min-epoch-batches) cycling over
epochs, --warmup batches untimed, then batches for at least --seconds. Reported: views/s, views/s per
worker, and views per CPU second of the main process and its workers
(user+system time from /proc, workers read while alive).
"""

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

import argparse
import json
import os
import tempfile
import time

import torch
from torch.utils.data import ConcatDataset, DataLoader
from torchvision import datasets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proctree import TreeSampler, tree_cpu_seconds  # noqa: E402
from torch_train import fashion_mnist, simclr_transform  # noqa: E402


def open_dataset(spec, size, root):
    kind, _, path = spec.partition(":")
    if kind == "folder":
        return datasets.ImageFolder(path, transform=simclr_transform(size))
    if kind == "fmnist":
        return fashion_mnist(path, root, size)
    sys.exit(f"torch_aug.py: unknown --data {spec!r}: use folder:DIR or fmnist:DIR")


def batches(loader):
    while True:
        yield from loader


def measure(dataset, args, workers):
    # persistent_workers: the same worker processes serve every epoch, as
    # simclr-ort's loader does; otherwise each epoch of a small folder would
    # fork new workers (slow, and their CPU time would be lost to the count).
    # A small folder makes short epochs, and at every epoch's end the
    # DataLoader drains its prefetch queue before the next epoch starts (a
    # stall simclr-ort's loader, which runs on across epochs, does not have):
    # repeat the dataset so that one epoch holds at least --min-epoch-batches.
    repeat = max(1, -(-args.min_epoch_batches * args.batch // len(dataset)))
    if repeat > 1:
        dataset = ConcatDataset([dataset] * repeat)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0)
    stream = batches(loader)
    sampler = TreeSampler().start()
    for _ in range(args.warmup):
        next(stream)
    cpu0, t0 = tree_cpu_seconds(), time.perf_counter()
    n, wait = 0, 0.0
    while time.perf_counter() - t0 < args.seconds:
        w0 = time.perf_counter()
        next(stream)
        wait += time.perf_counter() - w0
        n += 1
    elapsed = time.perf_counter() - t0
    cpu1 = tree_cpu_seconds()
    sampler.stop()
    # CPU time per PID over the window: workers are the same processes throughout.
    if set(cpu1) != set(cpu0):
        print(f"torch_aug.py: warning: the process tree changed during the window "
              f"({sorted(cpu0)} -> {sorted(cpu1)}); the CPU time misses exited processes", file=sys.stderr)
    cpu = sum(cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1)
    del stream, loader
    views = 2 * args.batch * n
    return {
        "program": "pytorch", "data": args.data, "size": args.size, "batch": args.batch,
        "workers": workers, "batches": n, "views": views, "seconds": elapsed, "cpu_seconds": cpu,
        "views_per_s": views / elapsed, "views_per_s_per_worker": views / elapsed / max(workers, 1),
        "views_per_cpu_s": views / cpu if cpu > 0 else None,
        "consumer_wait_share": wait / elapsed,
        "memory": sampler.report(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder:DIR or fmnist:DIR")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--min-epoch-batches", type=int, default=50,
                   help="repeat a small dataset so that an epoch holds at least this many batches")
    p.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "simclr-bench-torchvision"))
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    args = p.parse_args()
    torch.set_num_threads(1)  # the main process only collects batches
    dataset = open_dataset(args.data, args.size, args.root)
    for w in args.workers.split(","):
        r = measure(dataset, args, int(w))
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{r['data']} {r['size']}x{r['size']} batch {r['batch']}, {r['workers']} workers: "
                  f"{r['views_per_s']:.0f} views/s, {r['views_per_s_per_worker']:.0f} views/s per worker, "
                  f"{r['views_per_cpu_s']:.0f} views per CPU second ({r['views']} views in "
                  f"{r['seconds']:.1f} s, {r['cpu_seconds']:.1f} CPU s)", flush=True)


if __name__ == "__main__":
    main()
