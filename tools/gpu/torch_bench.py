#!/usr/bin/env python3
"""Time the PyTorch reference's SimCLR training step on a GPU (eager mode).

The GPU baseline for `simclr-ort step --ep cuda --update`: same model and
loss as the parity check (tools/parity/reference.py), same LARS as the CPU
benchmark (tools/bench/torch_step.py), random fixed views already on the
GPU (simclr-ort copies its views from host memory every step, so this
flatters PyTorch slightly). One timed step: zero_grad, forward, NT-Xent,
backward, LARS, then torch.cuda.synchronize().

    python3 tools/gpu/torch_bench.py --arch resnet50 --stem imagenet \\
        --image-size 224 --pairs 128 [--tf32] [--warmup 3] [--iters 10] --json

Also measures the host<->device copy bandwidth of pageable NumPy memory
(what ONNX Runtime copies simclr-ort's Go buffers from and to) for --copy-mib
MiB, so the copy share of a simclr-ort step can be estimated from the bytes
it moves. Output (--json): one JSON object.
"""

import argparse
import json
import os
import statistics
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from reference import ARCHS, STEMS, SimCLR, nt_xent  # noqa: E402
from torch_step import LARS  # noqa: E402


def copy_bandwidth(mib, device):
    """Seconds per MiB for pageable host->device and device->host copies (median of 5)."""
    host = np.random.rand(mib * (1 << 20) // 4).astype(np.float32)
    dev = torch.empty(host.size, dtype=torch.float32, device=device)
    back = np.empty_like(host)
    h2d, d2h = [], []
    for _ in range(6):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        dev.copy_(torch.from_numpy(host))
        torch.cuda.synchronize()
        h2d.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch.from_numpy(back).copy_(dev)
        torch.cuda.synchronize()
        d2h.append(time.perf_counter() - t0)
    return statistics.median(h2d[1:]) / mib, statistics.median(d2h[1:]) / mib


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), default="resnet18")
    parser.add_argument("--stem", choices=STEMS, default="cifar")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--bn-groups", type=int, choices=(1, 2), default=1)
    parser.add_argument("--projection-dim", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--tf32", action="store_true", help="allow TF32 in matmuls and convolutions")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--copy-mib", type=int, default=0, help="also measure copy bandwidth with this many MiB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True  # cuDNN algorithm search, as ONNX Runtime's exhaustive
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = SimCLR(args.arch, args.stem, args.projection_dim).to(device).train()
    optimizer = LARS(model.parameters(), lr=0.3 * args.pairs / 256)
    views = torch.rand(2 * args.pairs, 3, args.image_size, args.image_size, device=device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for i in range(args.warmup + args.iters):
        sync()
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss = nt_xent(model(views, args.bn_groups), args.temperature)
        loss.backward()
        optimizer.step()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            losses.append(loss.item())
    median = statistics.median(times)
    result = {
        "arch": args.arch, "stem": args.stem, "image_size": args.image_size, "pairs": args.pairs,
        "tf32": args.tf32, "median_step_seconds": median, "pairs_per_second": args.pairs / median,
        "step_seconds": times, "losses": losses,
        "max_memory_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "max_memory_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20 if cuda else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__, "gpu": torch.cuda.get_device_name(device) if cuda else "cpu",
    }
    if args.copy_mib and cuda:
        h2d, d2h = copy_bandwidth(args.copy_mib, device)
        result["h2d_seconds_per_mib"], result["d2h_seconds_per_mib"] = h2d, d2h
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.arch} {args.stem} {args.image_size}px {args.pairs} pairs tf32={args.tf32}: "
              f"median {median:.4f} s/step, {result['pairs_per_second']:.1f} pairs/s, "
              f"peak allocated {result['max_memory_allocated_mib']} MiB")


if __name__ == "__main__":
    main()
