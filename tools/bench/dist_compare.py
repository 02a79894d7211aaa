#!/usr/bin/python3
"""Step time of data-parallel training against one process, on this machine.

Runs, in alternating rounds, the same global batch of Fashion-MNIST
training three ways and reports the median step time of each (from
RUNDIR/metrics.jsonl, warm-up steps dropped) and their ratios:

  - W processes x 1 thread:  mpirun -np W simclr-ort train --batch-size n
  - 1 process x W threads, --shards W (the same step as the W processes)
  - 1 process x W threads, one BatchNorm batch (ordinary training)

    make build-mpi
    /usr/bin/python3 tools/bench/dist_compare.py [--world 2] [--pairs 64] [--steps 12] [--rounds 3]

Also prints the bytes the collectives move per step and rank (all-gather of
z, all-reduce of gradients and running statistics), from rank 0's summary.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def median_step(rundir, warmup):
    with open(os.path.join(rundir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step_seconds"] for line in f if line.strip()]
    return statistics.median(steps[warmup:])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "bin", "simclr-ort"), help="built with make build-mpi")
    p.add_argument("--data", default="fmnist:/usr/share/datasets/fashion-mnist")
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--pairs", type=int, default=64, help="pairs per process")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    w, n = args.world, args.pairs
    common = ["train", "--data", args.data, "--arch", "resnet18", "--image-size", str(args.image_size),
              "--steps", str(args.steps), "--log-every", "1000", "--checkpoint-every", "0"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    setups = {
        f"{w} processes x 1 thread": lambda out: ["mpirun", "--oversubscribe", "-np", str(w), args.binary] + common +
        ["--batch-size", str(n), "--threads", "1", "--workers", "1", "--out", out],
        f"1 process x {w} threads, --shards {w}": lambda out: [args.binary] + common +
        ["--batch-size", str(w * n), "--shards", str(w), "--threads", str(w), "--workers", str(w), "--out", out],
        f"1 process x {w} threads": lambda out: [args.binary] + common +
        ["--batch-size", str(w * n), "--threads", str(w), "--workers", str(w), "--out", out],
    }
    times = {name: [] for name in setups}
    summary = ""
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, (name, cmd) in enumerate(setups.items()):
                out = os.path.join(tmp, f"r{r}s{i}")
                res = subprocess.run(cmd(out), env=env, capture_output=True, text=True)
                if res.returncode != 0:
                    sys.exit(f"{name} failed:\n{res.stderr[-2000:]}")
                if "payload per step" in res.stdout + res.stderr:
                    line = [l for l in (res.stdout + res.stderr).splitlines() if "payload per step" in l][-1]
                    summary = line[line.find("rank "):]
                times[name].append(median_step(out, args.warmup))
                print(f"round {r + 1} {name}: {times[name][-1]:.3f} s/step", flush=True)
    base = statistics.median(times[f"1 process x {w} threads, --shards {w}"])
    print(f"\nglobal batch {w * n} pairs, ResNet18 {args.image_size}px, medians over {args.rounds} rounds:")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:<36} {m:.3f} s/step  ({base / m:.2f}x the one-process --shards run's speed)")
    if summary:
        print(summary)


if __name__ == "__main__":
    main()
