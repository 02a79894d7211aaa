#!/usr/bin/python3
"""The Fashion-MNIST learning study of issue 4: simclr-ort beside the PyTorch
reference at the same budget and settings, kNN and linear probe at four points.

    /usr/bin/python3 tools/study/study.py --steps 1500 --out runs/study [--seed 1]
        [--simclr-ort BIN] [--train-limit 10000] [--test-limit 2000] [--segments 3]
    /usr/bin/python3 tools/study/study.py --steps 30 --out /tmp/study-smoke \\
        --train-limit 2000 --test-limit 500          # smoke test, a few minutes

Both sides train ResNet18 (ImageNet stem, fc removed) on 28x28 views of the
Fashion-MNIST train split, batch 128 pairs, projector 512-512-64, NT-Xent at
temperature 0.5, LARS (lr 0.3 x 128/256, momentum 0.9, trust 0.001, weight
decay 1e-6, BatchNorm parameters excluded) with cosine decay to 0 over
--steps, RandomResizedCrop scale (0.2, 1), flip, ColorJitter(0.4, 0.4, 0.4,
0.1) p=0.8, grayscale p=0.2, and the reference's BatchNorm semantics: each
view normalised apart (simclr-ort --bn-groups 2; the reference's two encoder
passes).

- ours: `simclr-ort export --random-init` with the run's seed (the weights
  the run starts from) for step 0, then ONE --steps cosine schedule trained
  in --segments invocations (`train --stop-after`, then `train --resume
  --stop-after`), each checkpoint copied aside and exported;
- reference: tools/study/torch_reference.py, which exports its encoder at the
  same steps with simclr-ort's metadata;
- every encoder is evaluated by the same `simclr-ort eval` command, kNN (k=200,
  T=0.1) and linear probe, on the first --train-limit training and
  --test-limit test images.

Trainings and evaluations run one at a time: each encoder is evaluated as
soon as it is written, before the next training starts (an evaluation run
beside a training at nice 19 was tried: ONNX Runtime's spinning threads left
it almost no CPU). Training wall times therefore exclude evaluation.

Outputs under --out: ours/ (run directory, checkpoints, encoders, logs),
torch/ (encoders, metrics.jsonl, summary.json, log), evals.json (one result
per encoder and protocol, kept between invocations: a rerun skips what is
done, as do the trainings), and study.json with the table, losses and wall
times; the table is printed at the end.
"""

import sys

sys.dont_write_bytecode = True

import argparse
import json
import os
import shutil
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = "fmnist:/usr/share/datasets/fashion-mnist"


def config_flags(args):
    """The configuration flags of train and export --random-init."""
    return ["--arch", "resnet18", "--stem", "imagenet", "--image-size", "28", "--batch-size", "128",
            "--projection-dim", "64", "--temperature", "0.5", "--bn-groups", "2"]


def train_flags(args):
    return config_flags(args) + [
        "--data", DATA, "--steps", str(args.steps), "--crop-scale-min", "0.2", "--jitter-strength", "0.5",
        "--optimizer", "lars", "--lr-scaling", "linear", "--seed", str(args.seed), "--log-every", "100",
        "--checkpoint-every", "0"]


def run(cmd, log_path, env=None):
    """Run cmd with stdout+stderr appended to log_path; return wall seconds."""
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        sys.exit(f"study.py: {cmd[0]} failed with status {proc.returncode}; see {log_path}")
    return time.perf_counter() - t0


class Evals:
    """Evaluations, one at a time as encoders appear, results kept in evals.json."""

    def __init__(self, args):
        self.args = args
        self.path = os.path.join(args.out, "evals.json")
        self.results = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.results = json.load(f)

    def key(self, side, step, protocol):
        return f"{side}/{step}/{protocol}/{self.args.train_limit}/{self.args.test_limit}"

    def submit(self, side, step, encoder):
        """Evaluate encoder with both protocols, unless evals.json has them."""
        for protocol in ("knn", "linear"):
            if self.key(side, step, protocol) in self.results:
                continue
            cmd = [self.args.simclr_ort, "eval", "--encoder", encoder, "--data", DATA,
                   "--protocol", protocol, "--train-limit", str(self.args.train_limit),
                   "--test-limit", str(self.args.test_limit), "--threads", "2", "--json"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(f"study.py: {' '.join(cmd)}: status {proc.returncode}: {proc.stderr.strip()}")
            result = json.loads(proc.stdout)
            result["wall_seconds"] = wall
            self.results[self.key(side, step, protocol)] = result
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.results, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            print(f"eval {side} step {step} {protocol}: {100 * result['top1']:.2f}% ({wall:.0f} s)", flush=True)

    def top1(self, side, step, protocol):
        r = self.results.get(self.key(side, step, protocol))
        return None if r is None else r["top1"]


def points(args):
    return [0] + [round(args.steps * i / args.segments) for i in range(1, args.segments + 1)]


def train_torch(args, evals, pts, train=True):
    """Train the reference (unless it is done or train is False); evaluate what it exported.

    Returns its summary: summary.json of a finished run, or, for a run that
    was stopped early, one rebuilt from its metrics.jsonl and the encoders it
    exported (training seconds: the sum of its step times).
    """
    out = os.path.join(args.out, "torch")
    os.makedirs(out, exist_ok=True)
    summary = os.path.join(out, "summary.json")
    if train and not os.path.exists(summary):
        if os.path.exists(os.path.join(out, "metrics.jsonl")):
            os.remove(os.path.join(out, "metrics.jsonl"))  # a run that did not finish starts over
        run(["/usr/bin/python3", os.path.join(HERE, "torch_reference.py"), "--steps", str(args.steps),
             "--export-at", ",".join(map(str, pts)), "--out", out, "--seed", str(args.seed),
             "--crop-scale-min", "0.2", "--jitter-strength", "0.5", "--workers", "2", "--threads", "2",
             "--log-every", "100"], os.path.join(out, "train.log"))
    if os.path.exists(summary):
        with open(summary) as f:
            s = json.load(f)
    else:
        metrics = os.path.join(out, "metrics.jsonl")
        records = read_metrics(metrics) if os.path.exists(metrics) else []
        s = {"steps_done": len(records), "stopped_early": True,
             "train_seconds": sum(r["step_seconds"] for r in records),
             "exports": {str(p): os.path.join(out, f"encoder-{p}.onnx") for p in pts
                         if os.path.exists(os.path.join(out, f"encoder-{p}.onnx"))}}
    for p in pts:
        if str(p) in s["exports"]:
            evals.submit("reference", p, s["exports"][str(p)])
    return s


def train_ours(args, evals, pts, train=True):
    """Train ours in segments (unless train is False); evaluate every encoder there is."""
    out = os.path.join(args.out, "ours")
    rundir = os.path.join(out, "run")
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "train.log")
    timing_path = os.path.join(out, "timing.json")
    timing = {}
    if os.path.exists(timing_path):
        with open(timing_path) as f:
            timing = json.load(f)

    def save_timing():
        with open(timing_path, "w") as f:
            json.dump(timing, f, indent=1)

    encoder0 = os.path.join(out, "encoder-0.onnx")
    if not os.path.exists(encoder0):  # cheap: made even when not training
        run([args.simclr_ort, "export", "--random-init", "--seed", str(args.seed), "--out", encoder0]
            + config_flags(args), log)
    evals.submit("ours", 0, encoder0)
    for prev, cur in zip(pts, pts[1:]):
        encoder = os.path.join(out, f"encoder-{cur}.onnx")
        ckpt = os.path.join(out, f"checkpoint-{cur}.ckpt")
        if not os.path.exists(encoder):
            if not os.path.exists(ckpt):
                if not train:
                    break
                where = ["--out", rundir] if prev == 0 else ["--resume", rundir]
                if prev == 0 and os.path.exists(rundir):
                    shutil.rmtree(rundir)  # a first segment that did not finish
                timing[f"train_{prev}_{cur}"] = run(
                    [args.simclr_ort, "train"] + where + train_flags(args) + ["--stop-after", str(cur - prev)],
                    log)
                save_timing()
                shutil.copyfile(os.path.join(rundir, "checkpoint.ckpt"), ckpt)
            run([args.simclr_ort, "export", "--checkpoint", ckpt, "--out", encoder], log)
        evals.submit("ours", cur, encoder)
    return timing


def read_metrics(path, key="step"):
    """Per-step records of a metrics.jsonl (the last record of each step wins)."""
    records = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            records[r[key]] = r
    return [records[k] for k in sorted(records)]


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def report(args, pts, evals, torch_summary, our_timing, total_wall):
    """Print the table and write study.json; points a side has not reached show '-'."""
    def metrics_of(path):
        return read_metrics(path) if os.path.exists(path) else []

    ours = metrics_of(os.path.join(args.out, "ours", "run", "metrics.jsonl"))
    ref = metrics_of(os.path.join(args.out, "torch", "metrics.jsonl"))
    window = max(1, min(50, args.steps // 10))

    def loss_near(records, step):
        """Mean loss of the `window` steps before `step` (the steps that led to it)."""
        losses = [r["loss"] for r in records if step - window <= r["step"] < step]
        return mean(losses) if len(losses) == window else None

    rows = []
    for p in pts:
        row = {"step": p}
        for side in ("ours", "reference"):
            for protocol in ("knn", "linear"):
                row[f"{side}_{protocol}"] = evals.top1(side, p, protocol)
        row["ours_loss"] = loss_near(ours, p) if p > 0 else None
        row["reference_loss"] = loss_near(ref, p) if p > 0 else None
        rows.append(row)

    def pct(x):
        return "-" if x is None else f"{100 * x:.2f}"

    def num(x):
        return "-" if x is None else f"{x:.4f}"

    lines = [f"Fashion-MNIST study, seed {args.seed}, {args.steps} steps of batch 128 (one cosine schedule), "
             f"eval on {args.train_limit} train / {args.test_limit} test images",
             f"{'step':>6} | {'ours kNN':>8} {'ref kNN':>8} | {'ours lin':>8} {'ref lin':>8} | "
             f"{'ours loss':>9} {'ref loss':>9}  (loss: mean of the {window} steps before)"]
    for r in rows:
        lines.append(f"{r['step']:>6} | {pct(r['ours_knn']):>8} {pct(r['reference_knn']):>8} | "
                     f"{pct(r['ours_linear']):>8} {pct(r['reference_linear']):>8} | "
                     f"{num(r['ours_loss']):>9} {num(r['reference_loss']):>9}")
    diff = {}
    both = [r for r in rows if all(r[f"{side}_{protocol}"] is not None
                                   for side in ("ours", "reference") for protocol in ("knn", "linear"))]
    compared = both[-1]["step"] if both else None
    if both:
        for protocol in ("knn", "linear"):
            diff[protocol] = both[-1][f"ours_{protocol}"] - both[-1][f"reference_{protocol}"]
        lines.append(f"at step {compared}{' (the last point both sides reached)' if compared != pts[-1] else ''}: "
                     f"ours - reference: kNN {100 * diff['knn']:+.2f} points, "
                     f"linear {100 * diff['linear']:+.2f} points")

    def median(xs):
        return sorted(xs)[len(xs) // 2] if xs else None

    final = {side: ({"step": recs[-1]["step"] + 1, "loss": recs[-1]["loss"]} if recs else None)
             for side, recs in (("ours", ours), ("reference", ref))}
    lines.append("final step loss: " + ", ".join(
        f"{side} {'-' if f is None else format(f['loss'], '.4f') + ' at step ' + str(f['step'])}"
        for side, f in final.items()))
    ours_train = sum(v for k, v in our_timing.items() if k.startswith("train_"))
    ours_steps = sum(r["step_seconds"] for r in ours)
    ref_steps = sum(r["step_seconds"] for r in ref)
    ours_median, ref_median = median([r["step_seconds"] for r in ours]), median([r["step_seconds"] for r in ref])
    lines.append(f"training wall time: ours {ours_train:.0f} s for {len(ours)} steps in "
                 f"{sum(1 for k in our_timing if k.startswith('train_'))} invocations (sum of step times "
                 f"{ours_steps:.0f} s, median step {num(ours_median)} s); reference "
                 f"{torch_summary['train_seconds'] if torch_summary else 0:.0f} s for {len(ref)} steps "
                 f"(sum of step times {ref_steps:.0f} s, median step {num(ref_median)} s)")
    lines.append(f"this invocation's wall time {total_wall:.0f} s (training and evaluation)")
    text = "\n".join(lines)
    print(text)
    study = {"seed": args.seed, "steps": args.steps, "points": pts, "train_limit": args.train_limit,
             "test_limit": args.test_limit, "table": rows, "difference": diff, "difference_at_step": compared,
             "loss_window": window, "final_loss": final,
             "wall_seconds": {"ours_train": ours_train, "ours_train_invocations": our_timing,
                              "ours_step_sum": ours_steps, "ours_median_step": ours_median,
                              "reference_train": torch_summary["train_seconds"] if torch_summary else None,
                              "reference_step_sum": ref_steps, "reference_median_step": ref_median,
                              "invocation": total_wall},
             "reference_summary": torch_summary, "evals": evals.results, "text": text}
    with open(os.path.join(args.out, "study.json"), "w") as f:
        json.dump(study, f, indent=1)
    print(f"wrote {os.path.join(args.out, 'study.json')}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500, help="training budget of both sides")
    p.add_argument("--segments", type=int, default=3, help="evaluation points after step 0")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="runs/study")
    p.add_argument("--simclr-ort", default="simclr-ort", help="the simclr-ort binary")
    p.add_argument("--train-limit", type=int, default=10000)
    p.add_argument("--test-limit", type=int, default=2000)
    p.add_argument("--only", choices=("ours", "reference"),
                   help="train one side only (both are still evaluated and reported)")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: evaluate the encoders there are and report")
    args = p.parse_args()
    if args.steps < args.segments:
        p.error("--steps must be at least --segments")
    args.simclr_ort = shutil.which(args.simclr_ort) or args.simclr_ort
    os.makedirs(args.out, exist_ok=True)
    pts = points(args)
    start = time.perf_counter()
    evals = Evals(args)
    torch_summary = train_torch(args, evals, pts, train=not args.no_train and args.only != "ours")
    timing = train_ours(args, evals, pts, train=not args.no_train and args.only != "reference")
    report(args, pts, evals, torch_summary, timing, time.perf_counter() - start)


if __name__ == "__main__":
    main()
