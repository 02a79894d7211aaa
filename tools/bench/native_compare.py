#!/usr/bin/python3
"""The pure training step of simclr-ort with native kernels, with standard ONNX
ops, and of PyTorch, side by side: one command for issue 12's benchmark.

For each configuration the three programs run in alternating rounds (each run:
warm-up steps, then timed steps; all do forward, NT-Xent, backward and the
LARS update on fixed random views, no data loader). Reported per
configuration: the median over rounds of each run's median step time, the
ratios PyTorch/native and PyTorch/standard (>= 1 means simclr-ort is faster),
peak RSS of each, and the CPU time of a simclr-ort step (on a shared machine
it tells the work from the wait). The load average is printed before and
after each configuration; on a machine shared with other jobs the timings
are noisy, so read the per-round figures too.

PyTorch runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its
environment, so that OpenBLAS picks its kernel for this CPU as a user's
PyTorch would; the kernel it picked is printed. Then one profiled run of each
simclr-ort variant gives ONNX Runtime's costliest op types, and
tools/bench/torch_profile.py PyTorch's.

Usage: /usr/bin/python3 tools/bench/native_compare.py [--rounds 3] [--iters 5]
           [--threads 2] [--configs resnet18:imagenet:28:128,...] [--no-profile]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# arch:stem:image-size:pairs, issue 12's configurations.
CONFIGS = ("resnet18:imagenet:28:128,resnet18:imagenet:28:64,resnet18:imagenet:64:32,"
           "resnet18:cifar:32:64,resnet50:imagenet:64:16")


def run_json(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default=CONFIGS, help="comma-separated arch:stem:image-size:pairs")
    p.add_argument("--no-profile", action="store_true", help="skip the profiled runs")
    args = p.parse_args()

    torch_env = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        torch_env.pop(k, None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ortstep = os.path.join(tmp, "ortstep")
        subprocess.run(["go", "build", "-o", ortstep, "./tools/bench/ortstep"], cwd=ROOT, check=True)
        for spec in args.configs.split(","):
            arch, stem, size, pairs = spec.split(":")
            common = ["--arch", arch, "--stem", stem, "--image-size", size, "--pairs", pairs,
                      "--threads", str(args.threads), "--warmup", str(args.warmup), "--iters", str(args.iters)]
            name = f"{arch} {stem} {size}px, {pairs} pairs"
            print(f"{name} (load before: {load()})", flush=True)
            runs = {"native": [], "onnx": [], "torch": []}
            for r in range(args.rounds):
                for kernels in ("native", "onnx"):
                    runs[kernels].append(run_json([ortstep] + common + ["--kernels", kernels, "--json"]))
                runs["torch"].append(run_json([sys.executable, "tools/bench/torch_step.py"] + common + ["--json"], torch_env))
                print(f"  round {r + 1}: native {runs['native'][-1]['median_s']:.3f} s, "
                      f"standard {runs['onnx'][-1]['median_s']:.3f} s, PyTorch {runs['torch'][-1]['median_s']:.3f} s",
                      flush=True)
            med = {k: statistics.median(x["median_s"] for x in v) for k, v in runs.items()}
            rss = {k: max(x["peak_rss_mib"] for x in v) for k, v in runs.items()}
            cpu = {k: statistics.median(x["median_cpu_s"] for x in runs[k]) for k in ("native", "onnx")}
            per_round = [t["median_s"] / n["median_s"] for n, t in zip(runs["native"], runs["torch"])]
            row = {"config": name, "native_s": med["native"], "onnx_s": med["onnx"], "torch_s": med["torch"],
                   "torch_over_native": med["torch"] / med["native"], "torch_over_onnx": med["torch"] / med["onnx"],
                   "native_rss_mib": rss["native"], "onnx_rss_mib": rss["onnx"], "torch_rss_mib": rss["torch"],
                   "native_cpu_s": cpu["native"], "onnx_cpu_s": cpu["onnx"], "load_after": load()}
            rows.append(row)
            print(f"  native   {med['native']:.3f} s/step (CPU {cpu['native']:.3f} s), peak RSS {rss['native']:.0f} MiB")
            print(f"  standard {med['onnx']:.3f} s/step (CPU {cpu['onnx']:.3f} s), peak RSS {rss['onnx']:.0f} MiB")
            print(f"  PyTorch  {med['torch']:.3f} s/step, peak RSS {rss['torch']:.0f} MiB "
                  f"(torch {runs['torch'][0]['torch_version']}, {runs['torch'][0]['blas']})")
            print(f"  PyTorch/native {row['torch_over_native']:.2f} (per round {', '.join(f'{x:.2f}' for x in per_round)}), "
                  f"PyTorch/standard {row['torch_over_onnx']:.2f}; load after: {row['load_after']}", flush=True)
            if not args.no_profile:
                for kernels in ("native", "onnx"):
                    prof = run_json([ortstep] + common[:-4] + ["--warmup", "1", "--iters", "3", "--kernels", kernels,
                                                               "--json", "--profile", os.path.join(tmp, "prof")])
                    print(f"  ONNX Runtime's top op types, {kernels} kernels (profiled run):")
                    for op in prof["top_node_types"][:5]:
                        print(f"    {op['op_type']:<22} {100 * op['share']:5.1f}%  {op['ms_per_step']:8.1f} ms/step  {op['nodes']:4d} nodes")
                prof = subprocess.run([sys.executable, "tools/bench/torch_profile.py"] + common[:-4] + ["--top", "5"],
                                      cwd=ROOT, check=True, capture_output=True, text=True, env=torch_env).stdout
                print("  PyTorch's top operators (torch.profiler, self CPU time):")
                print("".join("    " + line + "\n" for line in prof.strip().splitlines()), end="", flush=True)

    print("\n| configuration | native s/step | standard s/step | PyTorch s/step | PyTorch/native | PyTorch/standard "
          "| peak RSS native / standard / PyTorch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['native_s']:.3f} | {r['onnx_s']:.3f} | {r['torch_s']:.3f} | "
              f"{r['torch_over_native']:.2f} | {r['torch_over_onnx']:.2f} | "
              f"{r['native_rss_mib']:.0f} / {r['onnx_rss_mib']:.0f} / {r['torch_rss_mib']:.0f} MiB |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
