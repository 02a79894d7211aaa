#!/usr/bin/python3
"""Time one SimCLR training step of simclr-ort (ONNX Runtime, CPU) against the
PyTorch reference, side by side on this machine, in the same run.

For each configuration the two programs run alternately ROUNDS times (each
run: warm-up steps, then timed steps; both sides do forward, NT-Xent,
backward and the LARS update). Reported: the median of each side's per-run
median step time, the ratio PyTorch/simclr-ort (>= 1 means simclr-ort is
faster), pairs/s, and each side's peak RSS. Then one profiled simclr-ort run
gives the costliest ONNX Runtime node types.

Usage: /usr/bin/python3 tools/bench/compare.py [--rounds 3] [--iters 5]
           [--pairs 64] [--threads 2] [--configs cifar:32,imagenet:32]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_json(cmd):
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--configs", default="cifar:32,imagenet:32", help="stem:image-size pairs")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ortstep = os.path.join(tmp, "ortstep")
        subprocess.run(["go", "build", "-o", ortstep, "./tools/bench/ortstep"], cwd=ROOT, check=True)
        for spec in args.configs.split(","):
            stem, size = spec.split(":")
            common = ["--arch", args.arch, "--stem", stem, "--image-size", size,
                      "--pairs", str(args.pairs), "--threads", str(args.threads),
                      "--warmup", str(args.warmup), "--iters", str(args.iters), "--json"]
            ort_cmd = [ortstep] + common  # Go's flag package takes --flag too
            torch_cmd = [sys.executable, "tools/bench/torch_step.py"] + common
            ort_runs, torch_runs = [], []
            for r in range(args.rounds):
                ort_runs.append(run_json(ort_cmd))
                torch_runs.append(run_json(torch_cmd))
                print(f"  round {r + 1}: simclr-ort {ort_runs[-1]['median_s']:.3f} s, "
                      f"PyTorch {torch_runs[-1]['median_s']:.3f} s", flush=True)
            o = statistics.median(x["median_s"] for x in ort_runs)
            t = statistics.median(x["median_s"] for x in torch_runs)
            ratios = [tr["median_s"] / orr["median_s"] for orr, tr in zip(ort_runs, torch_runs)]
            print(f"{args.arch} {stem} {size}x{size}, {args.pairs} pairs, {args.threads} threads:")
            print(f"  simclr-ort {o:.3f} s/step ({args.pairs / o:.1f} pairs/s), peak RSS "
                  f"{max(x['peak_rss_mib'] for x in ort_runs):.0f} MiB (ONNX Runtime {ort_runs[0]['ort_version']})")
            print(f"  PyTorch    {t:.3f} s/step ({args.pairs / t:.1f} pairs/s), peak RSS "
                  f"{max(x['peak_rss_mib'] for x in torch_runs):.0f} MiB (torch {torch_runs[0]['torch_version']}, {torch_runs[0]['blas']})")
            print(f"  ratio PyTorch/simclr-ort: median {statistics.median(ratios):.2f} "
                  f"(per round {', '.join(f'{x:.2f}' for x in ratios)})")
            prof = run_json(ort_cmd[:-1] + ["-iters", "2", "-json", "-profile", os.path.join(tmp, "prof")])
            print("  costliest ONNX Runtime node types (profiled run):")
            for op in prof["top_node_types"][:5]:
                print(f"    {op['op_type']:<20} {100 * op['share']:5.1f}%  {op['ms_per_step']:8.1f} ms/step  {op['nodes']:4d} nodes")


if __name__ == "__main__":
    main()
