#!/usr/bin/env python3
"""Check and time `simclr-ort --ep cuda` against PyTorch on the same GPU.

One script for a GPU machine (issue 5), in one run:

  1. probe: can the CUDA provider run a training step with each BatchNorm
     lowering (onnx's BatchNormalization in training mode, primitive ops)?
  2. parity: tools/parity -ep cuda -gpu, one case at a time: a training
     step on ONNX Runtime's CUDA provider against PyTorch float32 on the
     same GPU, same weights and batch, TF32 off (loss 1e-4 relative, every
     gradient 1e-2 relative in L2 norm).
  3. out of memory: a step under a small --gpu-mem-limit must fail with an
     error that names the batch size and says to lower it.
  4. benchmark, TF32 off then on: ResNet50 224x224 with 128 pairs and
     ResNet18 (CIFAR stem) 32x32 with 512 pairs, `simclr-ort step --ep cuda
     --update` against tools/gpu/torch_bench.py (PyTorch eager): step time,
     pairs/s, the LARS update's share of the step, the host<->device copy
     share (bytes moved per step x measured pageable copy time per byte;
     and from ONNX Runtime's profile: time in model_run outside the
     executor plus Memcpy nodes), peak device memory (nvidia-smi, the whole
     process; PyTorch's allocator peak too).

Everything is logged under --out; the last lines printed are a summary
table. Steps are ordered by importance and skipped once --budget seconds
have passed, so a short lease still returns the essentials.

    python3 tools/gpu/check.py --bin DIR --out DIR [--budget 420]

DIR (--bin) holds simclr-ort, parity (go build -o DIR/parity ./tools/parity)
and an ONNX Runtime GPU build: libonnxruntime.so with
libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so
(`make setup-gpu` fetches one into .cache/onnxruntime-gpu). The CUDA 13
runtime, cuBLAS, cuRAND and cuDNN 9 are taken from PyTorch's nvidia-*
wheels when they are installed (their lib folders go on LD_LIBRARY_PATH).
"""

import argparse
import glob
import json
import os
import site
import subprocess
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

BENCH = [
    {"arch": "resnet50", "stem": "imagenet", "image_size": 224, "pairs": 128},
    {"arch": "resnet18", "stem": "cifar", "image_size": 32, "pairs": 512},
]


class Run:
    """Shared state: output folder, environment, time budget, results."""

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        self.start = time.time()
        self.results = {"steps": {}}
        self.env = dict(os.environ)
        self.env["LD_LIBRARY_PATH"] = ":".join(library_dirs(args.bin) + [self.env.get("LD_LIBRARY_PATH", "")])
        self.lib = os.path.join(os.path.abspath(args.bin), "libonnxruntime.so")

    def elapsed(self):
        return time.time() - self.start

    def over_budget(self, what):
        if self.elapsed() > self.args.budget:
            print(f"SKIP {what}: {self.elapsed():.0f} s spent of the {self.args.budget} s budget", flush=True)
            self.results["steps"][what] = "skipped (budget)"
            return True
        return False

    def sh(self, name, cmd, timeout=180):
        """Run cmd, log it to logs/NAME.log, return (rc, stdout, stderr, peak MiB used on the GPU)."""
        log = os.path.join(self.out, "logs", name + ".log")
        print(f"[{self.elapsed():5.0f} s] {name}: {' '.join(cmd)}", flush=True)
        monitor = GPUMemory()
        t0 = time.time()
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except FileNotFoundError as e:
            rc, out, err = 127, "", str(e)
        except subprocess.TimeoutExpired as e:
            rc, out, err = 124, e.stdout or "", (e.stderr or "") + f"\nTIMEOUT after {timeout} s"
            out = out.decode() if isinstance(out, bytes) else out
            err = err.decode() if isinstance(err, bytes) else err
        peak = monitor.stop()
        with open(log, "w") as f:
            f.write(f"$ {' '.join(cmd)}\nrc={rc} seconds={time.time() - t0:.1f} peak_gpu_mib={peak}\n"
                    f"--- stdout\n{out}\n--- stderr\n{err}\n")
        if rc != 0:
            tail = (err.strip() or out.strip()).splitlines()[-1:] or [""]
            print(f"  rc={rc}: {tail[0][:600]}", flush=True)
        return rc, out, err, peak


class GPUMemory:
    """Peak GPU memory in use (MiB, whole device, minus what was in use at the start)."""

    def __init__(self):
        self.base = self.read()
        self.peak = self.base
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    @staticmethod
    def read():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return int(out.split()[0])
        except Exception:
            return None

    def poll(self):
        while not self.done.wait(0.2):
            v = self.read()
            if v is not None and (self.peak is None or v > self.peak):
                self.peak = v

    def stop(self):
        self.done.set()
        self.thread.join()
        if self.base is None or self.peak is None:
            return None
        return self.peak - self.base


def library_dirs(bin_dir):
    """The ONNX Runtime folder, then the lib folders of the nvidia-* wheels and torch."""
    dirs = [os.path.abspath(bin_dir)]
    roots = set(site.getsitepackages() + [site.getusersitepackages()] + sys.path)
    for root in sorted(r for r in roots if r and os.path.isdir(r)):
        dirs += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))
        dirs += sorted(glob.glob(os.path.join(root, "nvidia", "cu13", "lib")))
    for extra in ("/usr/local/cuda/lib64", "/usr/local/nvidia/lib64"):
        if os.path.isdir(extra):
            dirs.append(extra)
    seen, unique = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return unique


def config_flags(c, variant):
    """Flags of a configuration c in a graph variant (BatchNorm lowering, convolution gradients)."""
    return ["--arch", c["arch"], "--stem", c["stem"], "--image-size", str(c["image_size"]),
            "--batch-size", str(c["pairs"]), "--bn-lowering", variant[0], "--conv-grad", variant[1]]


def name_of(c):
    return f"{c['arch']}-{c['stem']}-{c['image_size']}px-n{c['pairs']}"


def profile_copy_share(path):
    """From an ONNX Runtime profile: share of model_run outside the executor, and Memcpy nodes' share."""
    events = json.load(open(path))
    run = sum(e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    execute = sum(e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "SequentialExecutor::Execute")
    memcpy = sum(e["dur"] for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                 and "Memcpy" in e.get("args", {}).get("op_name", ""))
    if not run:
        return None
    return {"outside_executor_share": (run - execute) / run, "memcpy_node_share": memcpy / run,
            "model_run_us": run, "execute_us": execute, "memcpy_nodes_us": memcpy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="folder with simclr-ort, parity and the ONNX Runtime GPU libraries")
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget", type=float, default=420, help="seconds after which optional steps are skipped")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--ep", default="cuda", help="cuda; cpu only to try the script itself without a GPU")
    parser.add_argument("--small", action="store_true", help="tiny benchmark configurations (to try the script)")
    parser.add_argument("--probe-all", action="store_true",
                        help="also probe the CPU graph variants (ONNX Runtime 1.29's CUDA provider refuses the first "
                        "and crashes in Slice on the second)")
    args = parser.parse_args()
    r = Run(args)
    sim = os.path.join(os.path.abspath(args.bin), "simclr-ort")
    parity = os.path.join(os.path.abspath(args.bin), "parity")
    bench = BENCH if not args.small else [
        {"arch": "resnet18", "stem": "cifar", "image_size": 16, "pairs": 8},
    ]
    torch_device = "cuda:0" if args.ep == "cuda" else "cpu"

    print("LD_LIBRARY_PATH=" + r.env["LD_LIBRARY_PATH"], flush=True)
    r.sh("nvidia-smi", ["nvidia-smi"], timeout=30)

    # 1. probe each graph variant (BatchNorm lowering, convolution-gradient
    # formulation) on the provider, the GPU variant first
    variants = [("primitive", "gpu"), ("primitive", "cpu"), ("onnx", "cpu")][:None if args.probe_all else 1]
    working = []
    for v in variants:
        # --ort-log-level warning: the probes log which nodes stay on the CPU
        rc, out, err, _ = r.sh(f"probe-{v[0]}-{v[1]}", [sim, "step", "--ep", args.ep, "--ort-lib", r.lib, "--steps", "2",
                                                       "--ort-log-level", "warning"]
                               + config_flags({"arch": "resnet18", "stem": "cifar", "image_size": 32, "pairs": 8}, v))
        ok = rc == 0
        r.results["steps"][f"probe bn={v[0]} conv-grad={v[1]}"] = "ok" if ok else (err.strip().splitlines() or ["failed"])[-1][:2000]
        if ok:
            working.append(v)
    if not working:
        print("the CUDA provider ran no training step; see logs/probe-*.log", flush=True)
        write(r)
        return 1
    best = working[0]

    # 2. parity against PyTorch float32 on the same GPU
    parity_cases = {("primitive", "gpu"): ["resnet18-cifar-32px-n64-p64-t0.5-bnprimitive-cggpu",
                                           "resnet50-imagenet-64px-n32-p64-t0.5-bnprimitive-cggpu"],
                    ("primitive", "cpu"): ["resnet18-cifar-32px-n64-p64-t0.5-bnprimitive"],
                    ("onnx", "cpu"): ["resnet18-cifar-32px-n64-p64-t0.5"]}
    for v in working:
        for case in parity_cases[v][:0 if args.small else None]:
            if r.over_budget(f"parity {case}"):
                continue
            cmd = [parity, "-ep", args.ep, "-gpu", "-python", args.python, "-ort-lib", r.lib, "-cases", case,
                   "-keep", os.path.join("/tmp", "simclr-gpu-parity")]
            rc, out, err, _ = r.sh(f"parity-{case}", cmd, timeout=240)
            lines = [l for l in out.splitlines() if l.startswith(case) or l.startswith("  ")]
            r.results["steps"][f"parity {case}"] = {"rc": rc, "report": lines[-6:]}
            print("\n".join(lines[-6:]), flush=True)

    # 3. out of device memory: the error names the batch size
    if args.ep == "cuda" and not r.over_budget("oom"):
        rc, out, err, _ = r.sh("oom", [sim, "step", "--ep", "cuda", "--ort-lib", r.lib, "--steps", "1",
                                       "--gpu-mem-limit", "512"] + config_flags(BENCH[0], best))
        r.results["steps"]["oom"] = {"rc": rc, "message": (err.strip().splitlines() or [""])[-1][:1500]}

    # 4. benchmarks
    torch_copy = None
    rows = []
    for tf32 in (False, True):
        for c in bench:
            label = f"{name_of(c)} bn={best[0]} cg={best[1]} tf32={'on' if tf32 else 'off'}"
            if r.over_budget(f"bench {label}"):
                continue
            flags = config_flags(c, best) + (["--tf32"] if tf32 else [])
            rc, out, err, peak = r.sh(f"ours-{name_of(c)}-tf32{int(tf32)}",
                                      [sim, "step", "--ep", args.ep, "--ort-lib", r.lib, "--update", "--json",
                                       "--warmup", "3", "--steps", "10"] + flags, timeout=300)
            if rc != 0:
                r.results["steps"][f"bench {label}"] = "failed: " + (err.strip().splitlines() or [""])[-1][:1000]
                continue
            ours = json.loads(out)
            ours["peak_gpu_mib"] = peak
            theirs = None
            copy_mib = 256 if torch_copy is None else 0
            rc, out, err, tpeak = r.sh(f"torch-{name_of(c)}-tf32{int(tf32)}",
                                       [args.python, os.path.join(HERE, "torch_bench.py"), "--json",
                                        "--arch", c["arch"], "--stem", c["stem"], "--image-size", str(c["image_size"]),
                                        "--pairs", str(c["pairs"]), "--device", torch_device, "--copy-mib", str(copy_mib)]
                                       + (["--tf32"] if tf32 else []), timeout=300)
            if rc == 0:
                theirs = json.loads(out)
                theirs["peak_gpu_mib"] = tpeak
                if "h2d_seconds_per_mib" in theirs:
                    torch_copy = (theirs["h2d_seconds_per_mib"], theirs["d2h_seconds_per_mib"])
            row = {"label": label, "ours": ours, "torch": theirs}
            if torch_copy:
                est = ours["input_bytes"] / 2**20 * torch_copy[0] + ours["output_bytes"] / 2**20 * torch_copy[1]
                row["copy_seconds_estimate"] = est
                row["copy_share_estimate"] = est / ours["median_step_seconds"]
            rows.append(row)
            r.results["steps"][f"bench {label}"] = row
    # profile: copy share as ONNX Runtime sees it
    for c in bench:
        if r.over_budget(f"profile {name_of(c)}"):
            continue
        prefix = os.path.join(r.out, "prof-" + name_of(c))
        rc, out, err, _ = r.sh(f"profile-{name_of(c)}", [sim, "step", "--ep", args.ep, "--ort-lib", r.lib, "--update", "--json",
                                                          "--warmup", "2", "--steps", "3", "--cudnn-algo", "heuristic",
                                                          "--profile", prefix] + config_flags(c, best), timeout=240)
        if rc == 0:
            rep = json.loads(out)
            share = profile_copy_share(rep["profile_file"]) if rep.get("profile_file") else None
            r.results["steps"][f"profile {name_of(c)}"] = share
            for f in glob.glob(prefix + "_*.json"):
                os.remove(f)  # large; the shares are kept
    write(r)

    print("\nSUMMARY (median step; ratio = PyTorch step / simclr-ort step, >1 means simclr-ort is faster)")
    for key, value in r.results["steps"].items():
        if key.startswith(("probe", "parity", "oom", "profile")):
            print(f"{key}: {json.dumps(value)[:400]}")
    print(f"{'config':<46} {'ours s':>8} {'torch s':>8} {'ratio':>6} {'ours p/s':>9} {'torch p/s':>9} "
          f"{'LARS%':>6} {'copy%':>6} {'ours MiB':>9} {'torch MiB':>9}")
    for row in rows:
        o, t = row["ours"], row["torch"]
        ratio = t["median_step_seconds"] / o["median_step_seconds"] if t else float("nan")
        print(f"{row['label']:<46} {o['median_step_seconds']:8.4f} {t['median_step_seconds'] if t else float('nan'):8.4f} "
              f"{ratio:6.2f} {o['pairs_per_second']:9.1f} {t['pairs_per_second'] if t else float('nan'):9.1f} "
              f"{100 * o['median_update_seconds'] / o['median_step_seconds']:6.1f} "
              f"{100 * row.get('copy_share_estimate', float('nan')):6.1f} {o['peak_gpu_mib'] or -1:9} "
              f"{(t or {}).get('peak_gpu_mib') or -1:9}")
    print(f"total {r.elapsed():.0f} s")
    return 0


def write(r):
    with open(os.path.join(r.out, "gpu-check.json"), "w") as f:
        json.dump(r.results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
