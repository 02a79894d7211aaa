#!/usr/bin/python3
"""PyTorch side of the simclr-ort gradient parity check.

For each case directory written by the Go side, rebuild the SimCLR model in
PyTorch, load the exported parameters and BatchNorm running buffers, run one
training-mode forward/backward pass on the exported views and compare the
loss, every parameter gradient and every updated running buffer with the ONNX
Runtime results stored in the same directory.

Usage (use Debian's /usr/bin/python3, which has torch and torchvision):

    /usr/bin/python3 tools/parity/reference.py [--dump-torch] CASEDIR [CASEDIR ...]
    /usr/bin/python3 tools/parity/reference.py --selftest
    /usr/bin/python3 tools/parity/reference.py --make-fake CASEDIR [--arch resnet18]
        [--stem cifar] [--image-size 32] [--pairs 4] [--projection-dim 64]
        [--temperature 0.5] [--bn-groups 1] [--seed 0] [--name NAME] [--perturb NAME]

Case directory contract:

    case.json   {"name", "arch": "resnet18"|"resnet50", "stem": "imagenet"|"cifar",
                 "image_size", "pairs" (N), "projection_dim", "temperature",
                 "bn_groups": 1|2, "bn_eps", "bn_momentum",
                 "params": [...], "buffers": [...]}
                "params" must name exactly the model's parameters and "buffers"
                exactly its BatchNorm running_mean/running_var buffers (no
                num_batches_tracked), using PyTorch state_dict names of a module
                with submodules `encoder` (torchvision ResNet, fc = Identity)
                and `projector` (Linear(d,d,bias=False), ReLU,
                Linear(d,p,bias=False)).
    params/<name>.npy       float32, state_dict shape, one per params+buffers name
    views.npy               float32 [2N,3,S,S]; rows i and i+N are a positive pair
    ort/loss.npy            float32, one element
    ort/grad/<param>.npy    float32 gradient of the loss, every parameter
    ort/new/<buffer>.npy    float32 running buffer after the step, every buffer

The step: model in train mode; bn_groups=1 encodes all 2N views as one batch,
bn_groups=2 encodes views[:N] then views[N:] (BatchNorm statistics per view,
running buffers updated twice in sequence, as in the reference SimCLR).
PyTorch updates running_var with the unbiased batch variance (n/(n-1)).
z = projector(h); loss = NT-Xent(z, temperature).

Tolerances (--loss-tol, --tensor-tol). Every case also runs in float64 (the
same weights and views, cast), the exact answer of the same step; ORT's
float32 results are compared with it:
  - the loss: |ort - torch64| / |torch64| <= 1e-5;
  - every gradient and running buffer: ||ort - torch64||_2 / ||torch64||_2 <=
    1e-3, or, for a tensor where PyTorch's own float32 result is further than
    that from float64, no more than FLOOR_FACTOR (3) times PyTorch's own
    float32 error. ResNet BatchNorm backward on small random-init batches
    amplifies float32 rounding (bias gradients are sums that nearly cancel),
    and a ReLU input within rounding of zero can flip in one implementation
    and not the other; there a fixed 1e-3 would measure rounding, not
    gradients. The report says how many tensors passed by which rule, and
    prints the worst tensor against float64, against PyTorch float32, and
    PyTorch float32 against float64.

Exit status: 0 if every case passes, 1 if any case fails, 2 if any case
directory is unusable (missing or malformed file, or names/shapes that do not
match the model).

--dump-torch writes torch's results beside ORT's as torch/loss.npy,
torch/grad/<param>.npy and torch/new/<buffer>.npy (float32) and the same
under torch64/ (float64).

--selftest checks the NT-Xent implementation against a literal transcription
of the reference NT_Xent module (world size 1) on random projections.

--make-fake writes a case directory from a torchvision-initialised model
(running buffers randomised so that loading them matters), random views, and
torch's own results stored as the ort/ results, so that comparing it passes;
--perturb NAME (a parameter or buffer name, or "loss") scales that ORT result
by 1.01 (relative error 1e-2) so that the comparison must fail.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

LOSS_TOL = 1e-5
TENSOR_TOL = 1e-3
PERTURB_SCALE = 1.01

ARCHS = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}
STEMS = ("imagenet", "cifar")


class CaseError(Exception):
    """A case directory that cannot be used (exit status 2)."""


class SimCLR(nn.Module):
    """torchvision ResNet encoder without fc, followed by a 2-layer MLP projector."""

    def __init__(self, arch, stem, projection_dim):
        super().__init__()
        encoder = ARCHS[arch](weights=None)
        if stem == "cifar":
            encoder.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(encoder.conv1.weight, mode="fan_out", nonlinearity="relu")
            encoder.maxpool = nn.Identity()
        features = encoder.fc.in_features
        encoder.fc = nn.Identity()
        self.encoder = encoder
        self.projector = nn.Sequential(
            nn.Linear(features, features, bias=False),
            nn.ReLU(),
            nn.Linear(features, projection_dim, bias=False),
        )

    def forward(self, views, bn_groups):
        """Project 2N views; BatchNorm statistics are taken per group of views."""
        h = torch.cat([self.encoder(group) for group in views.chunk(bn_groups)])
        return self.projector(h)


def nt_xent(z, temperature):
    """NT-Xent loss of 2N projections; row i's positive is row (i + N) mod 2N."""
    rows = z.shape[0]
    unit = F.normalize(z, dim=1)
    logits = unit @ unit.t() / temperature
    logits = logits.masked_fill(torch.eye(rows, dtype=torch.bool, device=z.device), float("-inf"))
    targets = (torch.arange(rows, device=z.device) + rows // 2) % rows
    return F.cross_entropy(logits, targets, reduction="sum") / rows


def nt_xent_transcribed(z, temperature):
    """Literal transcription of the reference NT_Xent.forward for world_size 1."""
    batch_size = z.shape[0] // 2
    n = 2 * batch_size
    mask = torch.ones((n, n), dtype=bool)
    mask = mask.fill_diagonal_(0)
    for i in range(batch_size):
        mask[i, batch_size + i] = 0
        mask[batch_size + i, i] = 0
    sim = nn.CosineSimilarity(dim=2)(z.unsqueeze(1), z.unsqueeze(0)) / temperature
    sim_i_j = torch.diag(sim, batch_size)
    sim_j_i = torch.diag(sim, -batch_size)
    positive_samples = torch.cat((sim_i_j, sim_j_i), dim=0).reshape(n, 1)
    negative_samples = sim[mask].reshape(n, -1)
    labels = torch.zeros(n).long()
    logits = torch.cat((positive_samples, negative_samples), dim=1)
    return nn.CrossEntropyLoss(reduction="sum")(logits, labels) / n


def selftest():
    """Compare nt_xent with the transcription (loss and dL/dz); return exit status.

    "paired" projections make view 2 a noisy copy of view 1, so that the loss
    is far from its chance value log(2N-1) and a wrong positive index shows.
    """
    ok = True
    for seed, pairs, dim, temperature, paired, dtype in [
        (0, 1, 8, 0.5, False, torch.float64),
        (1, 4, 64, 0.5, False, torch.float64),
        (2, 7, 16, 0.1, True, torch.float64),
        (3, 64, 64, 0.5, False, torch.float64),
        (4, 64, 64, 0.5, True, torch.float64),
        (5, 4, 64, 0.5, False, torch.float32),
        (6, 64, 128, 0.2, True, torch.float32),
    ]:
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(2 * pairs, dim, generator=generator, dtype=dtype)
        if paired:
            z[pairs:] = z[:pairs] + 0.3 * z[pairs:]
        results = []
        for loss_fn in (nt_xent, nt_xent_transcribed):
            leaf = z.clone().requires_grad_(True)
            loss = loss_fn(leaf, temperature)
            loss.backward()
            results.append((loss.item(), leaf.grad))
        (loss, grad), (ref_loss, ref_grad) = results
        loss_rel = rel_abs(loss, ref_loss)
        grad_rel = rel_l2(grad.numpy(), ref_grad.numpy())
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        passed = loss_rel <= tol and grad_rel <= tol
        ok &= passed
        print(f"selftest N={pairs} d={dim} T={temperature} {'paired' if paired else 'random'} "
              f"{str(dtype)[6:]}: "
              f"loss {loss:.9g} vs transcription {ref_loss:.9g} rel={loss_rel:.1e} "
              f"grad rel={grad_rel:.1e} {'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


def read_config(case_dir):
    """Read and validate case.json."""
    path = os.path.join(case_dir, "case.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError as e:
        raise CaseError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise CaseError(f"{path} is not valid JSON: {e}") from None
    checks = {
        "name": lambda v: isinstance(v, str),
        "arch": lambda v: v in ARCHS,
        "stem": lambda v: v in STEMS,
        "image_size": lambda v: isinstance(v, int) and v > 0,
        "pairs": lambda v: isinstance(v, int) and v > 0,
        "projection_dim": lambda v: isinstance(v, int) and v > 0,
        "temperature": lambda v: isinstance(v, (int, float)) and v > 0,
        "bn_groups": lambda v: v in (1, 2),
        "bn_eps": lambda v: isinstance(v, (int, float)) and v > 0,
        "bn_momentum": lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
        "params": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "buffers": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    }
    for key, valid in checks.items():
        if key not in cfg:
            raise CaseError(f"{path}: missing key {key!r}")
        if not valid(cfg[key]):
            raise CaseError(f"{path}: invalid {key!r}: {cfg[key]!r}")
    return cfg


def load_array(path, shape):
    """Load a float32 .npy file of the given shape (shape None: a single element)."""
    if not os.path.isfile(path):
        raise CaseError(f"missing file {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise CaseError(f"cannot read {path}: {e}") from None
    if array.dtype != np.float32:
        raise CaseError(f"{path}: dtype {array.dtype}, want float32")
    if (array.size != 1) if shape is None else (array.shape != tuple(shape)):
        want = "one element" if shape is None else list(shape)
        raise CaseError(f"{path}: shape {list(array.shape)}, want {want}")
    return array


def name_mismatch(what, got, want):
    """Describe the difference between two name lists, or return None if they match."""
    got_set, want_set = set(got), set(want)
    missing = [n for n in want if n not in got_set]
    unexpected = [n for n in got if n not in want_set]
    if len(got_set) != len(got):
        return f"{what} contain duplicate names"
    if not missing and not unexpected:
        return None
    return (f"{what} do not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}"
            f" unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            f" ({len(missing)} missing, {len(unexpected)} unexpected)")


def running_buffer_names(model):
    return [n for n, _ in model.named_buffers() if not n.endswith("num_batches_tracked")]


def load_case(case_dir):
    """Build the model of a case directory with its parameters, buffers and views."""
    cfg = read_config(case_dir)
    model = SimCLR(cfg["arch"], cfg["stem"], cfg["projection_dim"])
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = float(cfg["bn_eps"])
            module.momentum = float(cfg["bn_momentum"])
    for what, got, want in [
        ("case.json params", cfg["params"], [n for n, _ in model.named_parameters()]),
        ("case.json buffers", cfg["buffers"], running_buffer_names(model)),
    ]:
        problem = name_mismatch(what, got, want)
        if problem:
            raise CaseError(f"{case_dir}: {problem}")
    params_dir = os.path.join(case_dir, "params")
    names = cfg["params"] + cfg["buffers"]
    if os.path.isdir(params_dir):
        stray = sorted(set(f for f in os.listdir(params_dir) if f.endswith(".npy"))
                       - set(n + ".npy" for n in names))
        if stray:
            raise CaseError(f"{params_dir}: unexpected files {stray[:5]}")
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    state = {name: torch.from_numpy(load_array(os.path.join(params_dir, name + ".npy"), shapes[name]))
             for name in names}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not n.endswith("num_batches_tracked") for n in missing):
        raise CaseError(f"{case_dir}: state_dict mismatch: missing {missing} unexpected {unexpected}")
    size = cfg["image_size"]
    views = load_array(os.path.join(case_dir, "views.npy"), (2 * cfg["pairs"], 3, size, size))
    return cfg, model, torch.from_numpy(views)


DEVICE = "cpu"  # --device


def run_step(cfg, model, views):
    """One training-mode forward/backward on DEVICE; return loss, gradients and running buffers."""
    model.to(DEVICE).train()
    views = views.to(DEVICE)
    model.zero_grad(set_to_none=True)
    loss = nt_xent(model(views, cfg["bn_groups"]), cfg["temperature"])
    loss.backward()
    grads = {name: p.grad.detach().cpu().numpy().copy() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    new = {name: buffers[name].detach().cpu().numpy().copy() for name in cfg["buffers"]}
    return loss.detach().reshape(1).cpu().numpy().copy(), grads, new


def write_results(directory, loss, grads, new):
    """Write loss.npy, grad/<param>.npy and new/<buffer>.npy under directory."""
    for sub in ("grad", "new"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    np.save(os.path.join(directory, "loss.npy"), loss)
    for sub, tensors in (("grad", grads), ("new", new)):
        for name, array in tensors.items():
            np.save(os.path.join(directory, sub, name + ".npy"), array)


# How much further from the float64 result than PyTorch's own float32 result
# an ORT tensor may be, where that float32 result misses the tolerance.
FLOOR_FACTOR = 3.0


def rel_abs(got, want):
    """|got - want| / |want| (|got| when want is 0)."""
    return abs(got - want) / abs(want) if want else abs(got)


def rel_l2(got, want):
    """||got - want||_2 / ||want||_2 in float64 (0 or inf when ||want|| is 0)."""
    got = got.astype(np.float64)
    want = want.astype(np.float64)
    diff = np.linalg.norm(got - want)
    norm = np.linalg.norm(want)
    if norm == 0:
        return 0.0 if diff == 0 else math.inf
    return float(diff / norm)


def severity(rel):
    """Sort key that ranks NaN as the worst error."""
    return math.inf if math.isnan(rel) else rel


def check_case(case_dir, dump_torch, loss_tol, tensor_tol, gate="float64"):
    """Compare one case directory; print its report and return True if it passes.

    The step runs in PyTorch twice, in float32 and in float64 (same weights
    and views, cast). ORT's float32 results pass when they are within the
    tolerances of the float64 result, the exact answer of the same step: on
    small random-init batches BatchNorm's backward is badly conditioned and
    PyTorch's own float32 gradients can be 1e-2 away from it, so a float32 to
    float32 comparison would measure PyTorch's rounding as much as ours. The
    report also gives ORT against PyTorch float32 and PyTorch float32 against
    float64 (its "f32 floor").

    With gate "float32" (GPU checks: PyTorch float32 on the same GPU, TF32
    off) ORT's results are held against PyTorch's float32 results instead,
    with the tolerances as given.
    """
    cfg, model, views = load_case(case_dir)
    loss, grads, new = run_step(cfg, model, views)
    cfg, model, views = load_case(case_dir)
    loss64, grads64, new64 = run_step(cfg, model.double(), views.double())
    if dump_torch:
        write_results(os.path.join(case_dir, "torch"), loss, grads, new)
        write_results(os.path.join(case_dir, "torch64"), loss64, grads64, new64)
    ort_dir = os.path.join(case_dir, "ort")
    ort_loss = float(load_array(os.path.join(ort_dir, "loss.npy"), None).reshape(()))
    exact_loss = float(loss64[0])
    loss_rel = rel_abs(ort_loss, exact_loss)
    rows = []  # (kind, name, ORT vs float64, ORT vs float32, float32 vs float64)
    for kind, sub, t32, t64 in (("grad", "grad", grads, grads64), ("stat", "new", new, new64)):
        for name, want in t64.items():
            got = load_array(os.path.join(ort_dir, sub, name + ".npy"), want.shape)
            rows.append((kind, name, rel_l2(got, want), rel_l2(got, t32[name]), rel_l2(t32[name], want)))
    # A tensor passes within the tolerance of the exact (float64) result, or,
    # where PyTorch's own float32 result is further than that from it, within
    # FLOOR_FACTOR times PyTorch's float32 error: no less exact than PyTorch.
    strict = sum(1 for r in rows if r[2] <= tensor_tol)
    failures = [(kind, name, rel, floor) for kind, name, rel, _, floor in rows
                if not (rel <= tensor_tol or rel <= FLOOR_FACTOR * floor)]
    if not loss_rel <= loss_tol:
        failures.insert(0, ("loss", "loss", loss_rel, rel_abs(float(loss[0]), exact_loss)))
    if gate == "float32":
        loss_rel = rel_abs(ort_loss, float(loss[0]))
        strict = sum(1 for r in rows if r[3] <= tensor_tol)
        failures = [(kind, name, rel32, floor) for kind, name, _, rel32, floor in rows if not rel32 <= tensor_tol]
        if not loss_rel <= loss_tol:
            failures.insert(0, ("loss", "loss", loss_rel, rel_abs(float(loss[0]), exact_loss)))

    def worst(kind, col):
        candidates = [r for r in rows if r[0] == kind]
        if not candidates:
            return "-"
        row = max(candidates, key=lambda r: severity(r[col]))
        return f"{row[1]} {row[col]:.2e}"

    verdict = "FAIL" if failures else "PASS"
    print(f"{cfg['name']}: {verdict} | loss ort={ort_loss:.8g} torch64={exact_loss:.8g} rel={loss_rel:.2e} "
          f"(torch32 rel={rel_abs(float(loss[0]), exact_loss):.2e}) | {len(rows) + 1} tensors")
    if gate == "float32":
        print(f"  gate: PyTorch float32 on {DEVICE} (loss rel {loss_rel:.2e} <= {loss_tol:g}; "
              f"{strict} of {len(rows)} tensors within {tensor_tol:g} relative L2)")
        within_floor = sum(1 for r in rows if r[2] <= FLOOR_FACTOR * max(r[4], TENSOR_TOL / FLOOR_FACTOR))
        print(f"  worst vs torch float64: grad {worst('grad', 2)}; {within_floor} of {len(rows)} tensors within "
              f"1e-3 or {FLOOR_FACTOR:g}x PyTorch's own float32 error (the CPU gate)")
    else:
        print(f"  worst vs torch float64: grad {worst('grad', 2)}, stat {worst('stat', 2)}; "
              f"{strict} of {len(rows)} tensors within {tensor_tol:g}, "
              f"{len(rows) - strict - len([f for f in failures if f[0] != 'loss'])} within {FLOOR_FACTOR:g}x PyTorch's own float32 error")
    print(f"  worst vs torch float32: grad {worst('grad', 3)}, stat {worst('stat', 3)}"
          f" | torch float32 vs float64: grad {worst('grad', 4)}")
    for kind, name, rel, floor in failures:
        label = "loss" if kind == "loss" else f"{kind} {name}"
        tol = loss_tol if kind == "loss" else tensor_tol
        if gate == "float32":
            print(f"  FAIL {label} rel={rel:.2e} > {tol:g} vs torch float32 (torch float32 vs float64: {floor:.1e})")
        else:
            print(f"  FAIL {label} rel={rel:.2e} > {tol:g} and > {FLOOR_FACTOR:g}x torch float32 vs float64 ({floor:.1e})")
    return not failures


def make_fake(args):
    """Write a self-consistent case directory (torch results stored as ort/)."""
    torch.manual_seed(args.seed)
    model = SimCLR(args.arch, args.stem, args.projection_dim)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    params = [n for n, _ in model.named_parameters()]
    buffers = running_buffer_names(model)
    name = args.name or (f"fake-{args.arch}-{args.stem}-s{args.image_size}-n{args.pairs}"
                         f"-g{args.bn_groups}" + (f"-perturbed-{args.perturb}" if args.perturb else ""))
    cfg = {"name": name, "arch": args.arch, "stem": args.stem, "image_size": args.image_size,
           "pairs": args.pairs, "projection_dim": args.projection_dim,
           "temperature": args.temperature, "bn_groups": args.bn_groups, "bn_eps": 1e-5,
           "bn_momentum": 0.1, "params": params, "buffers": buffers}
    case_dir = args.make_fake
    os.makedirs(os.path.join(case_dir, "params"), exist_ok=True)
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    state = model.state_dict()
    for n in params + buffers:
        np.save(os.path.join(case_dir, "params", n + ".npy"), state[n].numpy())
    views = torch.rand(2 * args.pairs, 3, args.image_size, args.image_size)
    np.save(os.path.join(case_dir, "views.npy"), views.numpy())

    loss, grads, new = run_step(*load_case(case_dir))
    if args.perturb == "loss":
        loss = loss * np.float32(PERTURB_SCALE)
    elif args.perturb:
        table = grads if args.perturb in grads else new
        if args.perturb not in table:
            sys.exit(f"--perturb {args.perturb}: not a parameter, buffer or 'loss'")
        table[args.perturb] = table[args.perturb] * np.float32(PERTURB_SCALE)
    write_results(os.path.join(case_dir, "ort"), loss, grads, new)
    print(f"wrote {case_dir} ({name}, {len(params)} params, {len(buffers)} buffers"
          f"{', perturbed ' + args.perturb if args.perturb else ''})")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for the case directory contract.")
    parser.add_argument("cases", nargs="*", metavar="CASEDIR")
    parser.add_argument("--dump-torch", action="store_true",
                        help="write torch/loss.npy, torch/grad/*.npy, torch/new/*.npy in each case")
    parser.add_argument("--loss-tol", type=float, default=LOSS_TOL,
                        help=f"relative loss tolerance (default {LOSS_TOL:g})")
    parser.add_argument("--tensor-tol", type=float, default=TENSOR_TOL,
                        help="relative L2 tolerance of gradients and running buffers "
                        f"(default {TENSOR_TOL:g})")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--device", default="cpu",
                        help="run PyTorch on this device, e.g. cuda (TF32 is turned off there)")
    parser.add_argument("--gate", choices=("float64", "float32"), default="float64",
                        help="hold ORT against PyTorch float64 with the float32 floor rule (default), "
                        "or against PyTorch float32 on --device")
    parser.add_argument("--selftest", action="store_true",
                        help="check nt_xent against a transcription of the reference NT_Xent")
    fake = parser.add_argument_group("fake case generation")
    fake.add_argument("--make-fake", metavar="CASEDIR", help="write a self-consistent case")
    fake.add_argument("--name", help="case name (default derived from the options)")
    fake.add_argument("--arch", choices=sorted(ARCHS), default="resnet18")
    fake.add_argument("--stem", choices=STEMS, default="cifar")
    fake.add_argument("--image-size", type=int, default=32)
    fake.add_argument("--pairs", type=int, default=4)
    fake.add_argument("--projection-dim", type=int, default=64)
    fake.add_argument("--temperature", type=float, default=0.5)
    fake.add_argument("--bn-groups", type=int, choices=(1, 2), default=1)
    fake.add_argument("--seed", type=int, default=0)
    fake.add_argument("--perturb", metavar="NAME",
                      help="scale this ORT result (param/buffer name or 'loss') by 1.01")
    args = parser.parse_args()

    modes = sum([bool(args.cases), args.selftest, bool(args.make_fake)])
    if modes != 1:
        parser.error("give case directories, --selftest or --make-fake CASEDIR (exactly one)")
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = args.device
    if DEVICE.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(torch.device(DEVICE))}, TF32 off")
    if args.selftest:
        return selftest()
    if args.make_fake:
        make_fake(args)
        return 0

    status = 0
    for case_dir in args.cases:
        try:
            if not check_case(case_dir, args.dump_torch, args.loss_tol, args.tensor_tol, args.gate):
                status = max(status, 1)
        except CaseError as e:
            print(f"{case_dir}: ERROR unusable input: {e}")
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
