#!/usr/bin/python3
"""Time full SimCLR training steps in PyTorch on the CPU (baseline for simclr-ort).

Usage (use Debian's /usr/bin/python3, which has torch and torchvision):

    /usr/bin/python3 tools/bench/torch_step.py --arch resnet18 --stem cifar \\
        --image-size 32 --pairs 64 --threads 2 --warmup 2 --iters 10 \\
        [--bn-groups 1] [--projection-dim 64] [--temperature 0.5] [--seed 0] [--json]

The model, its BatchNorm grouping and the NT-Xent loss are those of the parity
check (tools/parity/reference.py): torchvision ResNet with fc removed, a
Linear-ReLU-Linear projector without biases, NT-Xent over 2N views
(--bn-groups 1: one encoder pass over all 2N views; 2: one pass per view, as
in the reference SimCLR). The views are random and fixed across steps.

One timed step is: zero_grad, forward, NT-Xent, backward and a LARS update as
in the official SimCLR LARS optimizer (classic momentum 0.9, trust
coefficient eta 0.001, weight decay 1e-6, learning rate 0.3 * pairs / 256);
BatchNorm weights and biases, the model's only 1-D parameters, are excluded
from weight decay and trust-ratio adaptation.

Output: per-iteration seconds, median (and minimum) step time, pairs/s, peak RSS
(ru_maxrss) and the BLAS torch runs on. Convolutions run in oneDNN (mkldnn);
Linear layers and other GEMMs go to the BLAS library, reported from
torch.__config__ and from the shared libraries loaded into the process. The
OpenBLAS thread count is set to --threads as well, since torch.set_num_threads
does not reach OpenBLAS. With --json, stdout is one JSON object with
median_s, pairs_per_s, step_times, peak_rss_mib, torch_version, blas and the
run's settings, plus min_s (the fastest step, a hint when the machine is
shared: a median far above it means other processes took CPU time).
"""

import argparse
import ctypes
import json
import os
import re
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from reference import ARCHS, STEMS, SimCLR, nt_xent  # noqa: E402


class LARS:
    """LARS of the official SimCLR (classic momentum, no Nesterov)."""

    def __init__(self, params, lr, momentum=0.9, eta=0.001, weight_decay=1e-6):
        self.params = list(params)
        self.velocity = [torch.zeros_like(p) for p in self.params]
        self.lr = lr
        self.momentum = momentum
        self.eta = eta
        self.weight_decay = weight_decay

    @torch.no_grad()
    def step(self):
        for p, v in zip(self.params, self.velocity):
            grad = p.grad
            lr = self.lr
            if p.ndim > 1:  # not a BatchNorm weight or bias
                grad = grad.add(p, alpha=self.weight_decay)
                w_norm = p.norm()
                g_norm = grad.norm()
                trust = torch.where((w_norm > 0) & (g_norm > 0),
                                    self.eta * w_norm / g_norm, torch.ones_like(w_norm))
                lr = trust * self.lr
            v.mul_(self.momentum).add_(grad * lr)
            p.sub_(v)


def loaded_libraries(word):
    """Real paths of the shared libraries in this process whose file name contains word."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and word in os.path.basename(fields[5]):
                paths.add(os.path.realpath(fields[5]))
    return sorted(paths)


def configure_blas(threads):
    """Set OpenBLAS threads if OpenBLAS is loaded; return a one-line BLAS description."""
    match = re.search(r"BLAS_INFO=([^,\s]*)", torch.__config__.show())
    build = f"torch BLAS_INFO={match.group(1) if match else '?'}"
    libraries = loaded_libraries("blas")
    for path in libraries:
        library = ctypes.CDLL(path)
        if hasattr(library, "openblas_get_config"):
            library.openblas_set_num_threads(threads)
            library.openblas_get_config.restype = ctypes.c_char_p
            config = library.openblas_get_config().decode().strip()
            return (f"{build}; loaded {config} ({path}), "
                    f"{library.openblas_get_num_threads()} threads")
    return f"{build}; no OpenBLAS loaded; BLAS libraries: {', '.join(libraries) or 'none'}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), default="resnet18")
    parser.add_argument("--stem", choices=STEMS, default="cifar")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=64, help="N images, 2N views per step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--bn-groups", type=int, choices=(1, 2), default=1)
    parser.add_argument("--projection-dim", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    if args.iters < 1:
        parser.error("--iters must be at least 1")

    torch.set_num_threads(args.threads)
    blas = configure_blas(args.threads)
    torch.manual_seed(args.seed)
    model = SimCLR(args.arch, args.stem, args.projection_dim).train()
    optimizer = LARS(model.parameters(), lr=0.3 * args.pairs / 256)
    views = torch.rand(2 * args.pairs, 3, args.image_size, args.image_size)
    log = (lambda *a: None) if args.json else print
    log(f"torch {torch.__version__}, {args.threads} threads, {blas}")
    log(f"{args.arch} {args.stem} stem, {args.image_size}x{args.image_size}, {args.pairs} pairs, "
        f"bn_groups {args.bn_groups}")

    step_times = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss = nt_xent(model(views, args.bn_groups), args.temperature)
        loss.backward()
        optimizer.step()
        elapsed = time.perf_counter() - start
        warm = i >= args.warmup
        if warm:
            step_times.append(elapsed)
        log(f"{'iter' if warm else 'warmup'} {i + 1 - (args.warmup if warm else 0)}: "
            f"{elapsed:.4f} s  loss {loss.item():.5f}")

    median = statistics.median(step_times)
    result = {
        "arch": args.arch, "stem": args.stem, "image_size": args.image_size,
        "pairs": args.pairs, "bn_groups": args.bn_groups, "threads": args.threads,
        "median_s": median,
        "min_s": min(step_times),
        "pairs_per_s": args.pairs / median,
        "step_times": step_times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_version": torch.__version__,
        "blas": blas,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"median {median:.4f} s/step (min {result['min_s']:.4f}), "
              f"{result['pairs_per_s']:.1f} pairs/s, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
