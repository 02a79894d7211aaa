#!/usr/bin/python3
"""Compare the data pipelines: simclr-ort's loader (tools/bench/augbench)
against PyTorch's DataLoader with the reference's torchvision transforms
(tools/bench/torch_aug.py), in views/s per core.

    /usr/bin/python3 tools/bench/aug_compare.py [--rounds 2] [--seconds 8]
        [--workers 1,2] [--jpegs DIR] [--settings jpeg:32:128,jpeg:224:64,fmnist:28:128]

A setting is SOURCE:SIZE:BATCH with SOURCE jpeg (an image folder of
photo-like 500x375 JPEG files made by make_jpegs.py in --jpegs, decoded for
every view pair, as ImageFolder and simclr-ort's folder dataset do) or
fmnist (Fashion-MNIST idx files, held in memory by both). For each setting
the two programs run alternately --rounds times (order flipped every round),
each measuring every worker count in --workers for --seconds.

Reported per program and worker count (medians over rounds): views/s,
views/s per worker (views/s / workers: the per-core figure when each worker
has a core) and views per CPU second (views / user+system CPU time of the
whole process tree during the window: the per-core figure that does not
depend on how busy the machine is), and the ratios simclr-ort / PyTorch.

Like train_compare.py, it waits for other training and benchmark processes
to finish before every run and never runs two at once.
"""

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from train_compare import loadavg, wait_idle  # noqa: E402


def run_lines(cmd):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--settings", default="jpeg:32:128,jpeg:224:64,fmnist:28:128")
    p.add_argument("--jpegs", help="image folder of JPEG files (default: made in a temp dir)")
    p.add_argument("--jpeg-count", type=int, default=1000)
    p.add_argument("--fmnist", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--python", default="/usr/bin/python3")
    p.add_argument("--idle-timeout", type=float, default=900)
    p.add_argument("--json-out")
    args = p.parse_args()

    workdir = tempfile.mkdtemp(prefix="simclr-aug-compare-")
    jpegs = args.jpegs or os.path.join(workdir, "jpegs")
    if not os.path.isdir(jpegs):
        subprocess.run([args.python, os.path.join(HERE, "make_jpegs.py"), jpegs,
                        "--count", str(args.jpeg_count)], check=True)
    augbench = os.path.join(workdir, "augbench")
    subprocess.run(["go", "build", "-o", augbench, "./tools/bench/augbench"], cwd=ROOT, check=True)
    workers = [int(w) for w in args.workers.split(",")]

    report = []
    for setting in args.settings.split(","):
        source, size, batch = setting.split(":")
        spec = f"folder:{jpegs}" if source == "jpeg" else f"fmnist:{args.fmnist}"
        go_cmd = [augbench, "-data", spec, "-size", size, "-batch", batch, "-workers", args.workers,
                  "-seconds", str(args.seconds), "-json"]
        py_cmd = [args.python, os.path.join(HERE, "torch_aug.py"), "--data", spec, "--size", size,
                  "--batch", batch, "--workers", args.workers, "--seconds", str(args.seconds), "--json"]
        print(f"\n== {source} {size}x{size} batch {batch}", flush=True)
        runs = {"simclr-ort": [], "pytorch": []}
        for r in range(args.rounds):
            order = ("simclr-ort", "pytorch") if r % 2 == 0 else ("pytorch", "simclr-ort")
            for prog in order:
                wait_idle(timeout_s=args.idle_timeout)
                load = loadavg()
                lines = run_lines(go_cmd if prog == "simclr-ort" else py_cmd)
                runs[prog].append(lines)
                print(f"  round {r + 1} {prog:<10} " + "; ".join(
                    f"{x['workers']} workers {x['views_per_s']:.0f} views/s ({x['views_per_s_per_worker']:.0f}/worker, "
                    f"{x['views_per_cpu_s']:.0f}/CPU s)" for x in lines) + f"  [load before {load}]", flush=True)
        rows = []
        for i, w in enumerate(workers):
            row = {"setting": f"{source} {size}x{size} batch {batch}", "workers": w}
            for prog in runs:
                for key in ("views_per_s", "views_per_s_per_worker", "views_per_cpu_s"):
                    row[f"{prog}:{key}"] = statistics.median(run[i][key] for run in runs[prog])
            row["ratio_per_worker"] = row["simclr-ort:views_per_s_per_worker"] / row["pytorch:views_per_s_per_worker"]
            row["ratio_per_cpu_s"] = row["simclr-ort:views_per_cpu_s"] / row["pytorch:views_per_cpu_s"]
            rows.append(row)
        report.append({"setting": setting, "rows": rows, "runs": runs, "commands": [go_cmd, py_cmd]})

    print("\n| setting | workers | simclr-ort views/s | PyTorch views/s | simclr-ort per worker | PyTorch per worker "
          "| ratio | simclr-ort per CPU s | PyTorch per CPU s | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in report:
        for row in s["rows"]:
            print(f"| {row['setting']} | {row['workers']} | {row['simclr-ort:views_per_s']:.0f} "
                  f"| {row['pytorch:views_per_s']:.0f} | {row['simclr-ort:views_per_s_per_worker']:.0f} "
                  f"| {row['pytorch:views_per_s_per_worker']:.0f} | {row['ratio_per_worker']:.2f} "
                  f"| {row['simclr-ort:views_per_cpu_s']:.0f} | {row['pytorch:views_per_cpu_s']:.0f} "
                  f"| {row['ratio_per_cpu_s']:.2f} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
