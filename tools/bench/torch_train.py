#!/usr/bin/python3
"""Time the PyTorch reference's SimCLR training loop on Fashion-MNIST (CPU).

The baseline for `simclr-ort train` on the same data. Use Debian's
/usr/bin/python3, which has torch and torchvision:

    /usr/bin/python3 tools/bench/torch_train.py --arch resnet18 --stem imagenet \\
        --image-size 28 --pairs 128 --steps 12 --workers 2 --threads 2 [--json]

Data: torchvision's FashionMNIST (train split) read from the idx .gz files in
--data (default /usr/share/datasets/fashion-mnist). torchvision expects
ROOT/FashionMNIST/raw/NAME (it would gunzip NAME.gz itself, but only
after an MD5 check that Debian's recompressed archives fail), so the files
are gunzipped into --root (default: a directory under the system temp dir,
kept between runs); nothing is downloaded.

Each image is converted to RGB (grayscale to 3 channels) and gets two views
from the SimCLR train transform of the reference: RandomResizedCrop(size,
scale=(0.08, 1)), RandomHorizontalFlip, RandomApply(ColorJitter(0.8, 0.8,
0.8, 0.2), p=0.8), RandomGrayscale(0.2), ToTensor. A DataLoader (batch
--pairs, shuffled, last partial batch dropped, --workers worker processes)
feeds the loop; a new epoch starts a new iterator.

One step, as simclr-ort's: wait for the next batch, concatenate both views
into one batch of 2N (view 1 of image i at row i, view 2 at row i+N), then
zero_grad, forward (one encoder pass over the 2N views, --bn-groups 1 as
simclr-ort's default), NT-Xent, backward and the LARS update of
tools/bench/torch_step.py (model and loss from tools/parity/reference.py).
The step time is the time between the ends of consecutive steps (the first
step counts from the creation of the iterator, which starts the workers),
the data wait the time blocked in next() on the loader's iterator: the same
definitions as simclr-ort's metrics.jsonl (step_seconds, data_wait_seconds).

Memory: the main process's peak RSS (VmHWM), each worker's own peak RSS
(VmHWM, read while it runs), and the peaks of the summed RSS and summed PSS
of the whole process tree sampled every 0.5 s (see proctree.py; the RSS sum
counts pages shared by the forked workers once per process, the PSS sum
splits them).

Output: one line per step, then medians; with --json, stdout is one JSON
object: step_seconds, data_wait_seconds, median_s, pairs_per_s (pairs /
median step, warm-up steps excluded), throughput_pairs_per_s (pairs x timed
steps / their summed time), data_wait_share (summed data wait / summed step
time of the timed steps), memory, versions and settings.
"""

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

import argparse
import gzip
import json
import os
import shutil
import statistics
import tempfile
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
from proctree import TreeSampler  # noqa: E402
from reference import ARCHS, STEMS, SimCLR, nt_xent  # noqa: E402
from torch_step import LARS, configure_blas  # noqa: E402

FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def to_rgb(image):
    """PIL image to RGB (Fashion-MNIST's grayscale copied to 3 channels)."""
    return image.convert("RGB")


class TwoViews:
    """Two independent draws of a transform (the reference's TransformsSimCLR)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        return self.transform(image), self.transform(image)


def simclr_transform(size):
    """The SimCLR train transform of the PyTorch reference, after RGB conversion."""
    jitter = transforms.ColorJitter(0.8, 0.8, 0.8, 0.2)
    return TwoViews(transforms.Compose([
        to_rgb,
        transforms.RandomResizedCrop(size=size, scale=(0.08, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([jitter], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.ToTensor(),
    ]))


def prepare_root(data, root):
    """Put the uncompressed idx files where torchvision's FashionMNIST reads them.

    torchvision would extract ROOT/FashionMNIST/raw/NAME.gz itself, but only
    after checking the archive's MD5 against the upstream one, and Debian's
    dataset-fashion-mnist archives are recompressed (other MD5s, same
    content); so the archives are gunzipped here, once.
    """
    raw = os.path.join(root, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for name in FMNIST_FILES:
        dst = os.path.join(raw, name)
        if os.path.exists(dst):
            continue
        src = os.path.join(data, name + ".gz")
        if not os.path.exists(src):
            src = os.path.join(data, name)
        if not os.path.exists(src):
            sys.exit(f"torch_train.py: {src}[.gz] not found: pass --data DIR holding the Fashion-MNIST idx files")
        tmp = f"{dst}.tmp{os.getpid()}"
        with (gzip.open(src) if src.endswith(".gz") else open(src, "rb")) as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, dst)


def fashion_mnist(data, root, size):
    prepare_root(data, root)
    return torchvision.datasets.FashionMNIST(root, train=True, download=False,
                                             transform=simclr_transform(size))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), default="resnet18")
    parser.add_argument("--stem", choices=STEMS, default="imagenet")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--pairs", type=int, default=128, help="N images, 2N views per step")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2,
                        help="first steps left out of the medians and throughput")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=2, help="torch (and OpenBLAS) threads")
    parser.add_argument("--bn-groups", type=int, choices=(1, 2), default=1)
    parser.add_argument("--projection-dim", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                        help="directory of the Fashion-MNIST idx .gz files")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "simclr-bench-torchvision"),
                        help="torchvision dataset root (links and extracted files go here)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")

    log = (lambda *a, **k: None) if args.json else print
    torch.set_num_threads(args.threads)
    blas = configure_blas(args.threads)
    torch.manual_seed(args.seed)
    dataset = fashion_mnist(args.data, args.root, args.image_size)
    loader = DataLoader(dataset, batch_size=args.pairs, shuffle=True, drop_last=True,
                        num_workers=args.workers)
    model = SimCLR(args.arch, args.stem, args.projection_dim).train()
    optimizer = LARS(model.parameters(), lr=0.3 * args.pairs / 256)
    log(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads, "
        f"{args.workers} workers, {blas}")
    log(f"{args.arch} {args.stem} stem, {args.image_size}x{args.image_size}, {args.pairs} pairs, "
        f"{len(dataset)} images, {len(loader)} steps per epoch")

    sampler = TreeSampler().start()
    step_times, waits, losses = [], [], []
    iterator = None
    last = time.perf_counter()
    for step in range(args.steps):
        if iterator is None:
            iterator = iter(loader)
        t0 = time.perf_counter()
        try:
            (view1, view2), _ = next(iterator)
        except StopIteration:  # epoch over: start the next one
            iterator = iter(loader)
            (view1, view2), _ = next(iterator)
        wait = time.perf_counter() - t0
        views = torch.cat([view1, view2])
        model.zero_grad(set_to_none=True)
        loss = nt_xent(model(views, args.bn_groups), args.temperature)
        loss.backward()
        optimizer.step()
        value = loss.item()
        now = time.perf_counter()
        step_times.append(now - last)
        waits.append(wait)
        losses.append(value)
        last = now
        log(f"step {step}: {step_times[-1]:.4f} s, data wait {wait:.4f} s, loss {value:.5f}", flush=True)
    sampler.stop()  # workers still alive: their peaks are read
    memory = sampler.report()
    del iterator

    timed, timed_waits = step_times[args.warmup:], waits[args.warmup:]
    median = statistics.median(timed)
    result = {
        "program": "pytorch", "arch": args.arch, "stem": args.stem, "image_size": args.image_size,
        "pairs": args.pairs, "steps": args.steps, "warmup": args.warmup, "workers": args.workers,
        "threads": args.threads, "bn_groups": args.bn_groups,
        "step_seconds": step_times, "data_wait_seconds": waits, "losses": losses,
        "median_s": median, "min_s": min(timed),
        "median_data_wait_s": statistics.median(timed_waits),
        "pairs_per_s": args.pairs / median,
        "throughput_pairs_per_s": args.pairs * len(timed) / sum(timed),
        "data_wait_share": sum(timed_waits) / sum(timed),
        "memory": memory,
        "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
        "blas": blas,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"median {median:.4f} s/step (min {result['min_s']:.4f}), {result['pairs_per_s']:.1f} pairs/s "
              f"(throughput {result['throughput_pairs_per_s']:.1f}), data wait "
              f"{100 * result['data_wait_share']:.1f}% of step time")
        print("memory (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))


if __name__ == "__main__":
    main()
