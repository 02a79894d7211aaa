#!/usr/bin/python3
"""PyTorch's costliest operators in the SimCLR training step of torch_step.py
(forward, NT-Xent, backward, LARS), by self CPU time under torch.profiler.

Usage: /usr/bin/python3 tools/bench/torch_profile.py --arch resnet18 --stem imagenet \\
           --image-size 28 --pairs 128 --threads 2 [--steps 3] [--top 10]
"""

import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from reference import ARCHS, STEMS, SimCLR, nt_xent  # noqa: E402
from torch_step import LARS, configure_blas  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(ARCHS), default="resnet18")
    p.add_argument("--stem", choices=STEMS, default="cifar")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    configure_blas(args.threads)
    torch.manual_seed(0)
    model = SimCLR(args.arch, args.stem, 64).train()
    optimizer = LARS(model.parameters(), lr=0.3 * args.pairs / 256)
    views = torch.rand(2 * args.pairs, 3, args.image_size, args.image_size)

    def step():
        model.zero_grad(set_to_none=True)
        nt_xent(model(views, 1), 0.5).backward()
        optimizer.step()

    step()  # warm-up (oneDNN primitive creation)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    for e in events[:args.top]:
        print(f"{e.key:<40} {100 * e.self_cpu_time_total / total:5.1f}%  "
              f"{e.self_cpu_time_total / 1000 / args.steps:8.1f} ms/step")


if __name__ == "__main__":
    main()
