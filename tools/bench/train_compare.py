#!/usr/bin/python3
"""Compare `simclr-ort train` with the PyTorch reference's training loop on
Fashion-MNIST, side by side on this machine (CPU).

    /usr/bin/python3 tools/bench/train_compare.py [--rounds 3] [--workers 2]
        [--threads 2] [--configs resnet18:imagenet:28:128:14,...] [--kernels auto]
        [--simclr-ort BIN] [--json-out FILE]

A configuration is ARCH:STEM:IMAGE_SIZE:BATCH:STEPS. PyTorch runs with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment, so that
OpenBLAS picks its kernel for this CPU as a user's PyTorch would (the kernel
is printed); a slower forced kernel would flatter simclr-ort. For each, the
two programs run alternately --rounds times (the order flips every round),
same data, batch, step count, workers and threads:

- simclr-ort: `simclr-ort train --data fmnist:DIR --arch A --image-size S
  --batch-size B --steps N --ep cpu --workers W --threads T --out FRESH_DIR`
  under /usr/bin/time -v (peak memory: its "Maximum resident set size", one
  process); step times and data waits from FRESH_DIR/metrics.jsonl.
- PyTorch: tools/bench/torch_train.py with the same settings (peak memory:
  main process plus DataLoader workers, see torch_train.py).

The first --warmup (2) steps of every run are left out. Per run: median step
time, pairs/s = batch / median step, throughput = batch x timed steps / their
summed time, data-wait share = summed data wait / summed step time. Across
rounds the medians of these are printed, with the ratio simclr-ort pairs/s /
PyTorch pairs/s (> 1: simclr-ort is faster), per round and its median.

The machine may be shared: before every timed run the script waits until no
other training or benchmark process (simclr-ort train, torch_step,
torch_train, augbench, torch_aug) has been seen for 10 s (polling every 2 s,
at most --idle-timeout seconds; after that it runs anyway and says so), and
it never runs two timed programs at once. The load average is logged before
each run.
"""

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUSY_PATTERN = r"simclr-ort train|torch_step|torch_train|augbench|torch_aug"


def others_running():
    """Command lines of benchmark-like processes other than this one."""
    out = subprocess.run(["pgrep", "-af", BUSY_PATTERN], capture_output=True, text=True).stdout
    mine, pid = set(), os.getpid()
    while pid > 1:  # this process and its ancestors (the shell that started it)
        mine.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            break
        pid = int(stat[stat.rfind(")") + 2:].split()[1])
    return [line for line in out.splitlines()
            if line and int(line.split()[0]) not in mine and "pgrep" not in line]


def wait_idle(quiet_s=10, poll_s=2, timeout_s=900):
    """Wait until no other benchmark process has been seen for quiet_s seconds."""
    start = time.monotonic()
    quiet_since = None
    reported = False
    while True:
        busy = others_running()
        now = time.monotonic()
        if busy:
            quiet_since = None
            if not reported:
                print(f"    waiting for other processes to finish: {busy[0][:120]}", flush=True)
                reported = True
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet_s:
            return True
        if now - start > timeout_s:
            print(f"    WARNING: machine still busy after {timeout_s} s; running anyway", flush=True)
            return False
        time.sleep(poll_s)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def summarize(pairs, steps, waits, warmup):
    timed, timed_waits = steps[warmup:], waits[warmup:]
    median = statistics.median(timed)
    return {
        "median_s": median,
        "min_s": min(timed),
        "pairs_per_s": pairs / median,
        "throughput_pairs_per_s": pairs * len(timed) / sum(timed),
        "data_wait_share": sum(timed_waits) / sum(timed),
        "max_data_wait_s": max(timed_waits),
        "step_seconds": steps,
        "data_wait_seconds": waits,
    }


def run_simclr_ort(binary, cfg, args, workdir):
    arch, stem, size, pairs, steps = cfg
    out = tempfile.mkdtemp(prefix="run-", dir=workdir)
    os.rmdir(out)  # let simclr-ort create it: a fresh directory without a checkpoint
    cmd = ["/usr/bin/time", "-v", binary, "train", "--data", f"fmnist:{args.data}",
           "--arch", arch, "--stem", stem, "--image-size", str(size), "--batch-size", str(pairs),
           "--steps", str(steps), "--ep", "cpu", "--workers", str(args.workers), "--kernels", args.kernels,
           "--threads", str(args.threads), "--out", out, "--log-every", "1000"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"simclr-ort failed ({proc.returncode}):\n{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    records = {}
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            records[rec["step"]] = rec  # keep the last record of each step
    recs = [records[k] for k in sorted(records)]
    if len(recs) != steps:
        sys.exit(f"simclr-ort wrote {len(recs)} step records, want {steps}: {out}")
    result = summarize(pairs, [r["step_seconds"] for r in recs], [r["data_wait_seconds"] for r in recs],
                       args.warmup)
    result.update({"peak_rss_mib": int(rss.group(1)) / 1024 if rss else None, "wall_s": wall,
                   "losses": [r["loss"] for r in recs], "command": " ".join(cmd)})
    shutil.rmtree(out, ignore_errors=True)
    return result


def torch_env():
    """The environment for PyTorch: OpenBLAS picks its own kernel."""
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    return env


def run_torch(cfg, args):
    arch, stem, size, pairs, steps = cfg
    cmd = [args.python, os.path.join(HERE, "torch_train.py"), "--arch", arch, "--stem", stem,
           "--image-size", str(size), "--pairs", str(pairs), "--steps", str(steps),
           "--warmup", str(args.warmup), "--workers", str(args.workers), "--threads", str(args.threads),
           "--data", args.data, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=torch_env())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"torch_train.py failed ({proc.returncode}):\n{' '.join(cmd)}\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    result = summarize(pairs, out["step_seconds"], out["data_wait_seconds"], args.warmup)
    mem = out["memory"]
    result.update({"peak_rss_mib": mem["main_plus_workers_peak_rss_mib"],
                   "tree_peak_pss_mib": mem["tree_peak_pss_mib"],
                   "tree_peak_rss_mib": mem["tree_peak_rss_mib"],
                   "main_peak_rss_mib": mem["main_peak_rss_mib"],
                   "wall_s": wall, "losses": out["losses"], "blas": out["blas"],
                   "torch_version": out["torch_version"], "command": " ".join(cmd)})
    return result


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default="resnet18:imagenet:28:128:14,resnet18:imagenet:28:64:14,resnet18:imagenet:64:32:12,"
                   "resnet18:cifar:32:64:8,resnet50:imagenet:64:16:12",
                   help="ARCH:STEM:IMAGE_SIZE:BATCH:STEPS,...")
    p.add_argument("--kernels", default="auto", help="simclr-ort's --kernels")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--simclr-ort", help="simclr-ort binary (default: go build into a temp dir)")
    p.add_argument("--python", default="/usr/bin/python3", help="Python with torch and torchvision")
    p.add_argument("--idle-timeout", type=float, default=900)
    p.add_argument("--json-out", help="write every run's figures to this file")
    args = p.parse_args()

    configs = []
    for spec in args.configs.split(","):
        arch, stem, size, pairs, steps = spec.split(":")
        configs.append((arch, stem, int(size), int(pairs), int(steps)))
        if int(steps) <= args.warmup:
            p.error(f"{spec}: steps must exceed --warmup {args.warmup}")

    workdir = tempfile.mkdtemp(prefix="simclr-train-compare-")
    binary = args.simclr_ort
    if not binary:
        binary = os.path.join(workdir, "simclr-ort")
        subprocess.run(["go", "build", "-o", binary, "./cmd/simclr-ort"], cwd=ROOT, check=True)
    print(f"simclr-ort {binary}; {os.cpu_count()} CPUs; workers {args.workers}, threads {args.threads}; "
          f"warm-up steps excluded: {args.warmup}", flush=True)

    report = []
    for cfg in configs:
        arch, stem, size, pairs, steps = cfg
        name = f"{arch} {stem} {size}x{size} batch {pairs}, {steps} steps"
        print(f"\n== {name}", flush=True)
        ort_runs, torch_runs = [], []
        for r in range(args.rounds):
            order = ("simclr-ort", "pytorch") if r % 2 == 0 else ("pytorch", "simclr-ort")
            for prog in order:
                wait_idle(timeout_s=args.idle_timeout)
                load = loadavg()
                if prog == "simclr-ort":
                    res = run_simclr_ort(binary, cfg, args, workdir)
                    ort_runs.append(res)
                else:
                    res = run_torch(cfg, args)
                    torch_runs.append(res)
                    if r == 0:
                        print(f"  PyTorch {res['torch_version']}, BLAS {res['blas']}", flush=True)
                res["loadavg_before"] = load
                print(f"  round {r + 1} {prog:<10} median {res['median_s']:.3f} s/step (min {res['min_s']:.3f}), "
                      f"{res['pairs_per_s']:6.1f} pairs/s, data wait {100 * res['data_wait_share']:5.2f}% "
                      f"(max {res['max_data_wait_s']:.3f} s), peak RSS {res['peak_rss_mib']:.0f} MiB, "
                      f"wall {res['wall_s']:.0f} s, load before {load}", flush=True)
        ratios = [o["pairs_per_s"] / t["pairs_per_s"] for o, t in zip(ort_runs, torch_runs)]
        tratios = [o["throughput_pairs_per_s"] / t["throughput_pairs_per_s"] for o, t in zip(ort_runs, torch_runs)]
        summary = {
            "config": name, "arch": arch, "image_size": size, "pairs": pairs, "steps": steps,
            "simclr_ort": {k: med(ort_runs, k) for k in ("median_s", "pairs_per_s", "throughput_pairs_per_s",
                                                         "data_wait_share", "peak_rss_mib")},
            "pytorch": {k: med(torch_runs, k) for k in ("median_s", "pairs_per_s", "throughput_pairs_per_s",
                                                      "data_wait_share", "peak_rss_mib", "tree_peak_pss_mib",
                                                      "main_peak_rss_mib")},
            "ratio_pairs_per_s": statistics.median(ratios), "ratios_per_round": ratios,
            "ratio_throughput": statistics.median(tratios),
            "runs": {"simclr_ort": ort_runs, "pytorch": torch_runs},
        }
        report.append(summary)
        o, t = summary["simclr_ort"], summary["pytorch"]
        print(f"  medians over {args.rounds} rounds:")
        print(f"    simclr-ort {o['median_s']:.3f} s/step, {o['pairs_per_s']:.1f} pairs/s "
              f"(throughput {o['throughput_pairs_per_s']:.1f}), data wait {100 * o['data_wait_share']:.2f}%, "
              f"peak RSS {o['peak_rss_mib']:.0f} MiB")
        print(f"    PyTorch    {t['median_s']:.3f} s/step, {t['pairs_per_s']:.1f} pairs/s "
              f"(throughput {t['throughput_pairs_per_s']:.1f}), data wait {100 * t['data_wait_share']:.2f}%, "
              f"peak RSS main+workers {t['peak_rss_mib']:.0f} MiB (tree PSS {t['tree_peak_pss_mib']:.0f}, "
              f"main alone {t['main_peak_rss_mib']:.0f})")
        print(f"    ratio simclr-ort/PyTorch pairs/s: {summary['ratio_pairs_per_s']:.2f} "
              f"(per round {', '.join(f'{x:.2f}' for x in ratios)}; throughput ratio "
              f"{summary['ratio_throughput']:.2f})", flush=True)

    print("\n| config | simclr-ort pairs/s | PyTorch pairs/s | ratio | data wait simclr-ort | data wait PyTorch "
          "| peak RSS simclr-ort MiB | peak RSS PyTorch main+workers MiB (tree PSS) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in report:
        o, t = s["simclr_ort"], s["pytorch"]
        print(f"| {s['config']} | {o['pairs_per_s']:.1f} | {t['pairs_per_s']:.1f} | {s['ratio_pairs_per_s']:.2f} "
              f"| {100 * o['data_wait_share']:.2f}% | {100 * t['data_wait_share']:.2f}% "
              f"| {o['peak_rss_mib']:.0f} | {t['peak_rss_mib']:.0f} ({t['tree_peak_pss_mib']:.0f}) |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
