#!/usr/bin/python3
"""Train the PyTorch SimCLR reference on Fashion-MNIST and export its encoder
at chosen steps as ONNX files that `simclr-ort eval` reads (issue 4 study).

    /usr/bin/python3 tools/study/torch_reference.py --steps 1500 --export-at 0,500,1000,1500 \\
        --out runs/study/torch [--seed 1] [--pairs 128] [--image-size 28] \\
        [--crop-scale-min 0.2] [--jitter-strength 0.5] [--workers 2] [--threads 2]
    /usr/bin/python3 tools/study/torch_reference.py --check [--simclr-ort BIN]

Training, with the reference's semantics (Spijkervet/SimCLR,
/work/shared/reference): torchvision ResNet18 (ImageNet stem, fc removed),
projector Linear(512,512)-ReLU-Linear(512,64) without biases, NT-Xent at
temperature 0.5 (model and loss from tools/parity/reference.py). The encoder
runs on view 1 and view 2 in two separate passes, so BatchNorm normalises
each view apart and updates its running statistics twice per step
(simclr-ort's --bn-groups 2). LARS of tools/bench/torch_step.py (momentum
0.9, trust coefficient 0.001, weight decay 1e-6, BatchNorm parameters
excluded from both), lr 0.3 x pairs/256, cosine decay to 0 per step over
--steps: lr(t) = peak x (1 + cos(pi t / steps)) / 2, as simclr-ort's
schedule without warm-up. Views (the reference's TransformsSimCLR with the
study's settings): RGB, RandomResizedCrop(size, scale=(crop-scale-min, 1)),
RandomHorizontalFlip, RandomApply(ColorJitter(0.8s, 0.8s, 0.8s, 0.2s),
p=0.8), RandomGrayscale(0.2), ToTensor. Data: the Fashion-MNIST train split
through torchvision's FashionMNIST and a shuffled DataLoader (last partial
batch dropped, --workers processes), prepared by tools/bench/torch_train.py.

Export at every step listed in --export-at (0 is the initial weights; a
step t means after t updates): a copy of the encoder in eval mode (BatchNorm
from the running statistics), torch.onnx.export at opset 17, input "images"
float32 [N,3,S,S] in [0,1], output "features" [N,512], dynamic batch, and
the simclr.* metadata that `simclr-ort export` writes (runtime/export), so
the same `simclr-ort eval` command evaluates both implementations. Files go
to OUT/encoder-STEP.onnx; the per-step losses, learning rates and times to
OUT/metrics.jsonl (step, loss, lr, step_seconds, data_wait_seconds: the
definitions of simclr-ort's metrics.jsonl) and a summary to OUT/summary.json.

--check exports a model (running statistics moved off their defaults) the
way training does, runs `simclr-ort embed` on the first 64 Fashion-MNIST test
images and compares the features with torch's on the same images (eval mode),
and runs `simclr-ort eval` on the file: it shows that simclr-ort reads the
torch-exported file and computes what torch computes.
"""

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

import argparse
import copy
import json
import math
import os
import signal
import subprocess
import tempfile
import time

import numpy as np
import onnx
import torch
from torch.utils.data import DataLoader
import torchvision
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
from reference import SimCLR, nt_xent  # noqa: E402
from torch_step import LARS, configure_blas  # noqa: E402
from torch_train import TwoViews, prepare_root, to_rgb  # noqa: E402

FEATURE_DIM = {"resnet18": 512, "resnet50": 2048}
# runtime/export.Preprocessing, word for word: the input contract eval relies on.
PREPROCESSING = ("float32 NCHW RGB in [0,1] (grayscale repeated to 3 channels): resize the shorter side to "
                 "image_size pixels (bilinear), centre-crop image_size x image_size, divide 8-bit values by 255; "
                 "no mean/std normalisation")


def train_transform(size, scale_min, strength):
    """The reference's SimCLR views with the study's crop scale and jitter strength."""
    s = strength
    jitter = transforms.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
    return TwoViews(transforms.Compose([
        to_rgb,
        transforms.RandomResizedCrop(size=size, scale=(scale_min, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([jitter], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.ToTensor(),
    ]))


def cosine_lr(peak, step, total):
    """simclr-ort's schedule without warm-up (runtime/optim Schedule.LR)."""
    if step >= total:
        return 0.0
    return peak * 0.5 * (1 + math.cos(math.pi * step / total))


def export_encoder(model, args, step, path):
    """Write the encoder in eval mode as an ONNX file with simclr-ort's metadata."""
    encoder = copy.deepcopy(model.encoder).eval()
    size = args.image_size
    dummy = torch.zeros(2, 3, size, size)
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(encoder, dummy, tmp, opset_version=17, input_names=["images"],
                          output_names=["features"],
                          dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                          do_constant_folding=True)
    m = onnx.load(tmp)
    config = f"{args.arch}-{args.stem}-s{size}-n{args.pairs}-p{args.projection_dim}-g2"
    meta = {
        "simclr.arch": args.arch, "simclr.stem": args.stem, "simclr.image_size": str(size),
        "simclr.feature_dim": str(FEATURE_DIM[args.arch]), "simclr.training_steps": str(step),
        "simclr.producer_version": f"torch-reference (torch {torch.__version__}, "
                                   f"torchvision {torchvision.__version__})",
        "simclr.preprocessing": PREPROCESSING, "simclr.input": "images", "simclr.outputs": "features",
        "simclr.config": config,
    }
    del m.metadata_props[:]
    for key in sorted(meta):
        entry = m.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    m.doc_string = f"SimCLR {args.arch} encoder of the PyTorch reference at step {step}"
    onnx.checker.check_model(m)
    onnx.save(m, tmp)
    os.replace(tmp, path)


def train(args):
    export_at = sorted({int(s) for s in args.export_at.split(",")}) if args.export_at else [args.steps]
    if any(s < 0 or s > args.steps for s in export_at):
        sys.exit(f"torch_reference.py: --export-at {args.export_at}: steps must lie in 0..{args.steps}")
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    blas = configure_blas(args.threads)
    torch.manual_seed(args.seed)
    prepare_root(args.data, args.root)
    dataset = torchvision.datasets.FashionMNIST(
        args.root, train=True, download=False,
        transform=train_transform(args.image_size, args.crop_scale_min, args.jitter_strength))
    loader = DataLoader(dataset, batch_size=args.pairs, shuffle=True, drop_last=True,
                        num_workers=args.workers, persistent_workers=False)
    model = SimCLR(args.arch, args.stem, args.projection_dim).train()
    peak = 0.3 * args.pairs / 256
    optimizer = LARS(model.parameters(), lr=peak, weight_decay=1e-6)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads, "
          f"{args.workers} workers, {blas}", flush=True)
    print(f"{args.arch} {args.stem} stem, {args.image_size}x{args.image_size}, {args.pairs} pairs, "
          f"{len(loader)} steps per epoch, {args.steps} steps, peak lr {peak:g}, seed {args.seed}, "
          f"export at {export_at}", flush=True)

    exports = {}

    def export(step):
        t0 = time.perf_counter()
        path = os.path.join(args.out, f"encoder-{step}.onnx")
        export_encoder(model, args, step, path)
        exports[step] = path
        return time.perf_counter() - t0

    stop = []  # SIGTERM/SIGINT: finish the step, write the summary, exit
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    metrics = open(os.path.join(args.out, "metrics.jsonl"), "w")
    export_seconds = 0.0
    if 0 in export_at:
        export_seconds += export(0)
    start = time.perf_counter()
    last = start
    iterator = iter(loader)
    losses = []
    for step in range(args.steps):
        if stop:
            print(f"stopped by signal {stop[0]} after {step} steps", flush=True)
            break
        t0 = time.perf_counter()
        try:
            (view1, view2), _ = next(iterator)
        except StopIteration:  # epoch over: a new shuffled order
            iterator = iter(loader)
            (view1, view2), _ = next(iterator)
        wait = time.perf_counter() - t0
        lr = cosine_lr(peak, step, args.steps)
        optimizer.lr = lr
        model.zero_grad(set_to_none=True)
        # Two encoder passes (BatchNorm per view), as the reference's forward.
        loss = nt_xent(model(torch.cat([view1, view2]), 2), args.temperature)
        loss.backward()
        optimizer.step()
        value = loss.item()
        if not math.isfinite(value):
            sys.exit(f"torch_reference.py: step {step}: loss {value}")
        losses.append(value)
        now = time.perf_counter()
        record = {"step": step, "loss": value, "lr": lr, "step_seconds": now - last,
                  "data_wait_seconds": wait}
        last = now
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            recent = losses[-args.log_every:]
            print(f"step {step + 1}/{args.steps}: loss {value:.4f} (mean of last {len(recent)} "
                  f"{sum(recent) / len(recent):.4f}), lr {lr:.4f}, {now - start:.0f} s", flush=True)
        if step + 1 in export_at:
            t = export(step + 1)
            export_seconds += t
            last += t  # exporting is not training time
    train_seconds = time.perf_counter() - start - export_seconds
    metrics.close()
    del iterator
    summary = {"program": "torch-reference", "seed": args.seed, "steps": args.steps,
               "steps_done": len(losses), "stopped_early": len(losses) < args.steps, "pairs": args.pairs,
               "arch": args.arch, "stem": args.stem, "image_size": args.image_size,
               "crop_scale_min": args.crop_scale_min, "jitter_strength": args.jitter_strength,
               "peak_lr": peak, "workers": args.workers, "threads": args.threads,
               "train_seconds": train_seconds, "export_seconds": export_seconds,
               "final_loss": losses[-1] if losses else None,
               "exports": {str(k): v for k, v in sorted(exports.items())},
               "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
               "blas": blas}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"trained {len(losses)} steps in {train_seconds:.0f} s; encoders: "
          + ", ".join(sorted(exports.values())), flush=True)


def check(args):
    """Export a model with non-trivial running statistics; compare simclr-ort with torch on it.

    The model gets the seed's weights and two training-mode forward passes of
    random views (so the running statistics are not their defaults), then
    export_encoder writes it as training does. `simclr-ort embed` computes
    the features of the first 64 Fashion-MNIST test images from the file and
    torch those of the same images with the same encoder in eval mode; they
    must agree within 1e-4 of the feature scale. `simclr-ort eval` (kNN, 1,000
    / 200 images) must accept the file.
    """
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = SimCLR(args.arch, args.stem, args.projection_dim).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2 * args.pairs, 3, args.image_size, args.image_size), 2)
    encoder = model.encoder.eval()
    count = 64
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "encoder.onnx")
        export_encoder(model, args, 0, path)
        out = os.path.join(tmp, "features.npy")
        subprocess.run([args.simclr_ort, "embed", "--encoder", path, "--data", "fmnist:" + args.data,
                        "--split", "test", "--limit", str(count), "--batch-size", "16", "--out", out],
                       check=True)
        ours = np.load(out)
        labels = np.load(os.path.join(tmp, "features.labels.npy"))
        evaluated = subprocess.run([args.simclr_ort, "eval", "--encoder", path, "--data", "fmnist:" + args.data,
                                    "--protocol", "knn", "--train-limit", "1000", "--test-limit", "200",
                                    "--json"], check=True, capture_output=True, text=True)
        knn = json.loads(evaluated.stdout)["top1"]
    prepare_root(args.data, args.root)
    test = torchvision.datasets.FashionMNIST(args.root, train=False, download=False)
    images = torch.stack([transforms.ToTensor()(to_rgb(test[i][0])) for i in range(count)])
    want_labels = np.array([test[i][1] for i in range(count)])
    with torch.no_grad():
        theirs = encoder(images).numpy()
    scale = float(np.abs(theirs).max())
    err = float(np.abs(ours - theirs).max()) if ours.shape == theirs.shape else math.inf
    same_labels = bool((labels == want_labels).all())
    ok = err <= 1e-4 * scale and same_labels
    print(f"torch-exported encoder: simclr-ort embed vs torch on {count} test images: max |diff| {err:.2e} "
          f"(feature scale {scale:.3g}, relative {err / scale:.1e}), labels "
          f"{'equal' if same_labels else 'DIFFER'}; simclr-ort eval accepts it (kNN on 1000/200: "
          f"{100 * knn:.1f}%): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--export-at", default="", help="comma-separated steps to export at (default: the last)")
    p.add_argument("--out", default="runs/study/torch")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--arch", choices=sorted(FEATURE_DIM), default="resnet18")
    p.add_argument("--stem", choices=("imagenet", "cifar"), default="imagenet")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--projection-dim", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--crop-scale-min", type=float, default=0.2)
    p.add_argument("--jitter-strength", type=float, default=0.5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "simclr-bench-torchvision"),
                   help="torchvision dataset root (the idx files are gunzipped here once)")
    p.add_argument("--check", action="store_true",
                   help="check that simclr-ort reads a torch-exported encoder and computes torch's features")
    p.add_argument("--simclr-ort", default="simclr-ort", help="simclr-ort binary for --check")
    args = p.parse_args()
    if args.check:
        return check(args)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
