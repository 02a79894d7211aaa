#!/usr/bin/python3
"""PyTorch side of the simclr-ort gradient parity check.

For each case directory written by the Go side (tools/parity), rebuild the
SimCLR model in PyTorch, load the parameters and BatchNorm running buffers,
run one training-mode forward/backward pass in float64 on the same views at
ONNX Runtime's own ReLU and MaxPool decisions, and compare the loss, every
parameter gradient and every running-buffer update with ONNX Runtime's
results. Writes CASEDIR/result.json with the verdicts.

Usage (use Debian's /usr/bin/python3, which has torch and torchvision):

    /usr/bin/python3 tools/parity/reference.py [--dump-torch] CASEDIR [CASEDIR ...]
    /usr/bin/python3 tools/parity/reference.py --selftest

Case directory contract:

    case.json   {"name", "arch": "resnet18"|"resnet50", "stem": "imagenet"|"cifar",
                 "image_size", "pairs" (N), "projection_dim", "temperature",
                 "bn_groups": 1|2, "bn_eps", "bn_momentum",
                 "params": [...], "buffers": [...],
                 "decisions": [{"output", "kind": "relu"|"maxpool", "module", "call", "shape"}],
                 "runs": [{"dir", "variant", "ort_threads", "identical_without_decisions"}],
                 "torch_threads": [...]}
                "params" must name exactly the model's parameters and "buffers"
                exactly its BatchNorm running_mean/running_var buffers (no
                num_batches_tracked), using PyTorch state_dict names of a module
                with submodules `encoder` (torchvision ResNet, fc = Identity)
                and `projector` (Linear(d,d,bias=False), ReLU,
                Linear(d,p,bias=False)). Without "runs", one run in ort/;
                without "decisions", PyTorch decides for itself.
    params/<name>.npy       float32, state_dict shape, one per params+buffers name
    views.npy               float32 [2N,3,S,S]; rows i and i+N are a positive pair
    RUN/loss.npy            float32, one element
    RUN/grad/<param>.npy    float32 gradient of the loss, every parameter
    RUN/new/<buffer>.npy    float32 running buffer after the step, every buffer
    RUN/decisions/<output>.npy
                float32: a ReLU's output over all 2N views (its mask is
                output > 0), or a MaxPool's flat indices into its input
                ([2N,C,H,W], ONNX's convention). "module" and "call" name
                the PyTorch module (e.g. encoder.layer1.0.relu) and which of
                its calls in one forward pass (1-based; per BatchNorm group
                for the encoder).

The step: model in train mode; bn_groups=1 encodes all 2N views as one batch,
bn_groups=2 encodes views[:N] then views[N:] (BatchNorm statistics per view,
running buffers updated twice in sequence, as in the reference SimCLR).
PyTorch updates running_var with the unbiased batch variance (n/(n-1)).
z = projector(h); loss = NT-Xent(z, temperature).

The gate (--loss-tol, --tensor-tol), against PyTorch float64 at ONNX
Runtime's decisions: the exact derivative of the piecewise-linear function
ONNX Runtime's float32 forward pass chose. With PyTorch's own decisions, a
ReLU input within float32 rounding of zero that one side passes and the
other zeroes moves every upstream gradient of a 4-image batch by about 1%,
so the verdict would depend on rounding accidents (which BLAS kernel, how
many threads) rather than on the gradient rules.
  - the loss: |ort - torch64| / |torch64| <= 1e-5;
  - every gradient: ||ort - torch64||_2 / ||torch64||_2 <= 1e-3;
  - every running buffer's update (new - old): the same relative L2 <= 1e-3
    (the new value is 0.9 old + 0.1 batch; comparing it whole would hide an
    error of the update ten times over).
The report also gives each case's conditioning: PyTorch's own float32 step at
the same decisions against float64 (the float32 error of the smooth
computation, which the gate's margin is measured against), PyTorch float32
at its own decisions, how many of ONNX Runtime's decisions float64 would
have taken the other way (flips), and the fewest values a BatchNorm channel
normalises over.

Exit status: 0 if every case passes, 1 if any case fails, 2 if any case
directory is unusable (missing or malformed file, or names/shapes that do not
match the model).

--dump-torch writes the float64 results beside each run's as
RUN/torch64/loss.npy, grad/<param>.npy and new/<buffer>.npy.

--gate float32 (GPU checks: PyTorch float32 on --device, TF32 off) holds ONNX
Runtime's results against PyTorch float32 at ONNX Runtime's decisions
instead, with the tolerances as given.

--selftest checks the NT-Xent implementation against a literal transcription
of the reference NT_Xent module (world size 1) on random projections.
"""

import argparse
import copy
import hashlib
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

ARCHS = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}
STEMS = ("imagenet", "cifar")


class CaseError(Exception):
    """A case directory that cannot be used (exit status 2)."""


class Decisions:
    """One run's ReLU and MaxPool decisions, applied while PyTorch computes.

    masks[(module, call)] is a ReLU's mask (1 where ONNX Runtime's output was
    positive) or a MaxPool's flat indices, over all 2N views. Encoder
    modules count their calls per BatchNorm group (each group is one pass
    through the encoder, as in the reference); flips counts the decisions
    this computation would have taken the other way.
    """

    def __init__(self, cfg, entries, arrays, dtype, device):
        self.masks = {}
        for entry, array in zip(entries, arrays):
            tensor = torch.from_numpy(array)
            if entry["kind"] == "relu":
                tensor = (tensor > 0).to(dtype)
            else:
                tensor = tensor.to(torch.int64)
            self.masks[(entry["module"], entry["call"])] = tensor.to(device)
        self.rows = 2 * cfg["pairs"] // cfg["bn_groups"]
        self.group = 0
        self.calls = {}
        self.flips = {"relu": 0, "maxpool": 0}

    def begin_group(self, group):
        """Start an encoder pass over BatchNorm group `group`."""
        self.group = group
        self.calls = {m: c for m, c in self.calls.items() if not m.startswith("encoder")}

    def _take(self, module):
        call = self.calls.get(module, 0) + 1
        self.calls[module] = call
        mask = self.masks.get((module, call))
        if mask is None:
            raise CaseError(f"no decision recorded for call {call} of {module}")
        if module.startswith("encoder") and self.rows != mask.shape[0]:
            start = self.group * self.rows
            return mask[start:start + self.rows], start
        return mask, 0

    def relu(self, module, x):
        mask, _ = self._take(module)
        if mask.shape != x.shape:
            raise CaseError(f"decision of {module}: shape {list(mask.shape)}, activation {list(x.shape)}")
        self.flips["relu"] += int(((x > 0).to(x.dtype) != mask).sum())
        return x * mask

    def maxpool(self, module, x, kernel, stride, padding):
        flat, start = self._take(module)
        n, c, h, w = x.shape
        rows = torch.arange(start, start + n, device=x.device).view(n, 1, 1, 1)
        channels = torch.arange(c, device=x.device).view(1, c, 1, 1)
        local = flat - (rows * c + channels) * h * w
        out = x.flatten(2).gather(2, local.flatten(2)).view(flat.shape)
        own = F.max_pool2d(x, kernel, stride, padding)
        self.flips["maxpool"] += int((own != out).sum())
        return out


class DecidedReLU(nn.Module):
    """nn.ReLU, or the run's decisions when the model holds some."""

    def __init__(self, name, model):
        super().__init__()
        self.name = name
        self.model = [model]  # a list, so the model is not a submodule

    def forward(self, x):
        decisions = self.model[0].decisions
        return F.relu(x) if decisions is None else decisions.relu(self.name, x)


class DecidedMaxPool(nn.Module):
    """nn.MaxPool2d(3, 2, 1), or the run's decisions when the model holds some."""

    def __init__(self, name, model):
        super().__init__()
        self.name = name
        self.model = [model]

    def forward(self, x):
        decisions = self.model[0].decisions
        if decisions is None:
            return F.max_pool2d(x, 3, 2, 1)
        return decisions.maxpool(self.name, x, 3, 2, 1)


class SimCLR(nn.Module):
    """torchvision ResNet encoder without fc, followed by a 2-layer MLP projector.

    Every ReLU and MaxPool module can take its decisions from ONNX Runtime's
    forward pass (set `decisions` to a Decisions).
    """

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
        self.decisions = None
        for name, module in list(self.named_modules()):
            for child_name, child in list(module.named_children()):
                full = f"{name}.{child_name}" if name else child_name
                if isinstance(child, nn.ReLU):
                    setattr(module, child_name, DecidedReLU(full, self))
                elif isinstance(child, nn.MaxPool2d):
                    setattr(module, child_name, DecidedMaxPool(full, self))

    def forward(self, views, bn_groups):
        """Project 2N views; BatchNorm statistics are taken per group of views."""
        parts = []
        for k, group in enumerate(views.chunk(bn_groups)):
            if self.decisions is not None:
                self.decisions.begin_group(k)
            parts.append(self.encoder(group))
        return self.projector(torch.cat(parts))


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
    cfg.setdefault("runs", [{"dir": "ort"}])
    cfg["decisions"] = cfg.get("decisions") or []
    cfg.setdefault("torch_threads", [])
    for run in cfg["runs"]:
        if not isinstance(run, dict) or not isinstance(run.get("dir"), str) or os.sep in run["dir"]:
            raise CaseError(f"{path}: invalid run {run!r}")
    for entry in cfg["decisions"]:
        if not (isinstance(entry, dict) and entry.get("kind") in ("relu", "maxpool")
                and isinstance(entry.get("module"), str) and isinstance(entry.get("call"), int)
                and isinstance(entry.get("output"), str) and isinstance(entry.get("shape"), list)):
            raise CaseError(f"{path}: invalid decision {entry!r}")
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


def run_step(cfg, model, views, decisions=None):
    """One training-mode forward/backward on DEVICE at the given decisions.

    Returns loss, gradients, running buffers, and the fewest values a
    BatchNorm channel normalised over.
    """
    model.to(DEVICE).train()
    views = views.to(DEVICE)
    model.zero_grad(set_to_none=True)
    model.decisions = decisions
    counts = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: counts.append(args[0].numel() // args[0].shape[1]))
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        loss = nt_xent(model(views, cfg["bn_groups"]), cfg["temperature"])
        loss.backward()
    finally:
        model.decisions = None
        for h in hooks:
            h.remove()
    grads = {name: p.grad.detach().cpu().numpy().copy() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    new = {name: buffers[name].detach().cpu().numpy().copy() for name in cfg["buffers"]}
    return loss.detach().reshape(1).cpu().numpy().copy(), grads, new, min(counts)


def write_results(directory, loss, grads, new):
    """Write loss.npy, grad/<param>.npy and new/<buffer>.npy under directory."""
    for sub in ("grad", "new"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    np.save(os.path.join(directory, "loss.npy"), loss)
    for sub, tensors in (("grad", grads), ("new", new)):
        for name, array in tensors.items():
            np.save(os.path.join(directory, sub, name + ".npy"), array)


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


class Result:
    """What one step computed: loss, gradients and running buffers."""

    def __init__(self, loss, grads, new):
        self.loss = float(np.asarray(loss).reshape(()))
        self.grads = grads
        self.new = new


def load_run(case_dir, run_dir, cfg, shapes):
    """ONNX Runtime's results and decisions of one run."""
    ort_dir = os.path.join(case_dir, run_dir)
    loss = load_array(os.path.join(ort_dir, "loss.npy"), None)
    grads = {n: load_array(os.path.join(ort_dir, "grad", n + ".npy"), shapes[n]) for n in cfg["params"]}
    new = {n: load_array(os.path.join(ort_dir, "new", n + ".npy"), shapes[n]) for n in cfg["buffers"]}
    arrays = [load_array(os.path.join(ort_dir, "decisions", d["output"] + ".npy"), d["shape"])
              for d in cfg["decisions"]]
    return Result(loss, grads, new), arrays


def tensor_errors(got, want, old):
    """Relative L2 error of every gradient, and of every running buffer's update."""
    rows = [("grad", name, rel_l2(got.grads[name], want.grads[name])) for name in want.grads]
    for name in want.new:
        base = old[name].astype(np.float64)
        rows.append(("stat", name, rel_l2(got.new[name].astype(np.float64) - base,
                                           want.new[name].astype(np.float64) - base)))
    return rows


def worst_of(rows):
    if not rows:
        return {"name": "", "rel": 0.0}
    kind, name, rel = max(rows, key=lambda r: severity(r[2]))
    return {"name": name, "rel": rel}


def verdict(got, want, old, loss_tol, tensor_tol):
    """The gate: loss and every tensor within tolerance of want."""
    rows = tensor_errors(got, want, old)
    loss_rel = rel_abs(got.loss, want.loss)
    failures = [r for r in rows if not r[2] <= tensor_tol]
    if not loss_rel <= loss_tol:
        failures.insert(0, ("loss", "loss", loss_rel))
    return {
        "pass": not failures,
        "loss_rel": loss_rel,
        "worst": worst_of(rows),
        "worst_stat": worst_of([r for r in rows if r[0] == "stat"]),
        "failures": len(failures),
        "first_failure": worst_of(failures[:1]),
        "failing": [f"{kind} {name} {rel:.2e}" for kind, name, rel in failures],
    }


def decisions_key(entries, arrays):
    """A digest of the decisions themselves (ReLU masks, MaxPool indices):
    runs that decided alike share one float64 evaluation."""
    digest = hashlib.sha256()
    for entry, a in zip(entries, arrays):
        digest.update((a > 0).tobytes() if entry["kind"] == "relu" else a.tobytes())
    return digest.hexdigest()


def check_case(case_dir, dump_torch, loss_tol, tensor_tol, gate="float64"):
    """Compare every run of one case directory; print the report, write
    result.json and return True if every run passes.

    Each run's results are held against PyTorch float64 at that run's own
    decisions (gate "float64"), or against PyTorch float32 at them (gate
    "float32", for the GPU check). The float64 step is evaluated once per
    PyTorch thread count and set of decisions.
    """
    cfg, model32, views32 = load_case(case_dir)
    model64 = copy.deepcopy(model32).double()
    views64 = views32.double()
    state64 = copy.deepcopy(model64.state_dict())
    state32 = copy.deepcopy(model32.state_dict())
    old = {name: state32[name].numpy() for name in cfg["buffers"]}
    shapes = {name: tuple(t.shape) for name, t in state32.items()}

    def step(model, state, views, dtype, arrays):
        model.load_state_dict(state)
        decisions = Decisions(cfg, cfg["decisions"], arrays, dtype, DEVICE) if arrays is not None else None
        loss, grads, new, bn_min = run_step(cfg, model, views, decisions)
        return Result(loss, grads, new), decisions, bn_min

    threads = cfg["torch_threads"] or [torch.get_num_threads()]
    cache = {}
    results = []
    conditioning = None
    ok = True
    for t in threads:
        torch.set_num_threads(t)
        for run in cfg["runs"]:
            got, arrays = load_run(case_dir, run["dir"], cfg, shapes)
            if not cfg["decisions"]:
                arrays = None  # PyTorch decides for itself
            key = (t, decisions_key(cfg["decisions"], arrays) if arrays is not None else "")
            if key not in cache:
                ref64, d64, bn_min = step(model64, state64, views64, torch.float64, arrays)
                cache[key] = (ref64, d64.flips if d64 else {"relu": 0, "maxpool": 0}, bn_min)
            ref64, flips, bn_min = cache[key]
            reference = ref64
            if gate == "float32" or conditioning is None:
                ref32, _, _ = step(model32, state32, views32, torch.float32, arrays)
                if gate == "float32":
                    reference = ref32
            if conditioning is None:
                own32, _, _ = step(model32, state32, views32, torch.float32, None)
                conditioning = {
                    "bn_min_values": bn_min,
                    "torch32_same_decisions": worst_of(tensor_errors(ref32, ref64, old)),
                    "torch32_same_decisions_loss": rel_abs(ref32.loss, ref64.loss),
                    "torch32_own_decisions": worst_of(tensor_errors(own32, ref64, old)),
                }
            if dump_torch:
                write_results(os.path.join(case_dir, run["dir"], f"torch64-t{t}"),
                              np.array([ref64.loss]), ref64.grads, ref64.new)
            v = verdict(got, reference, old, loss_tol, tensor_tol)
            v.update({"dir": run["dir"], "variant": run.get("variant", ""), "ort_threads": run.get("ort_threads", 0),
                      "torch_threads": t, "identical_without_decisions": run.get("identical_without_decisions", True),
                      "difference_without_decisions": run.get("difference_without_decisions", 0.0),
                      "flips": flips})
            results.append(v)
            ok &= v["pass"]
            against = "torch float32" if gate == "float32" else "torch float64"
            print(f"{cfg['name']} seed {cfg.get('seed', '-')}{' mutant ' + cfg['mutant'] if cfg.get('mutant') else ''} "
                  f"[{run['dir']}, torch {t} threads]: {'PASS' if v['pass'] else 'FAIL'} | loss ort={got.loss:.8g} "
                  f"{against}={reference.loss:.8g} rel={v['loss_rel']:.2e} | worst vs {against}: "
                  f"{v['worst']['name']} {v['worst']['rel']:.2e} | flips relu {flips['relu']} maxpool {flips['maxpool']}"
                  + ("" if not run.get("checked_without_decisions") or v["identical_without_decisions"] else
                     f" | without decision outputs ORT differs by {run.get('difference_without_decisions', 0):.1e}"))
            for line in v["failing"][:8]:
                print(f"  FAIL {line} > {loss_tol if line.startswith('loss') else tensor_tol:g}")
            if len(v["failing"]) > 8:
                print(f"  ... {len(v['failing']) - 8} more")
    c = conditioning
    print(f"  conditioning: PyTorch float32 vs float64 at the same decisions: worst "
          f"{c['torch32_same_decisions']['name']} {c['torch32_same_decisions']['rel']:.1e}, loss "
          f"{c['torch32_same_decisions_loss']:.1e}; at its own decisions: worst {c['torch32_own_decisions']['name']} "
          f"{c['torch32_own_decisions']['rel']:.1e}; fewest values per BatchNorm channel {c['bn_min_values']}")
    with open(os.path.join(case_dir, "result.json"), "w") as f:
        json.dump({"case": cfg["name"], "seed": cfg.get("seed", 0), "mutant": cfg.get("mutant", ""),
                   "conditioning": conditioning, "runs": results}, f, indent=1)
    return ok


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for the case directory contract.")
    parser.add_argument("cases", nargs="*", metavar="CASEDIR")
    parser.add_argument("--dump-torch", action="store_true",
                        help="write the float64 results as RUN/torch64-tT/{loss.npy,grad/,new/} in each case")
    parser.add_argument("--loss-tol", type=float, default=LOSS_TOL,
                        help=f"relative loss tolerance (default {LOSS_TOL:g})")
    parser.add_argument("--tensor-tol", type=float, default=TENSOR_TOL,
                        help="relative L2 tolerance of gradients and running-buffer updates "
                        f"(default {TENSOR_TOL:g})")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads where case.json names none (default 2)")
    parser.add_argument("--device", default="cpu",
                        help="run PyTorch on this device, e.g. cuda (TF32 is turned off there)")
    parser.add_argument("--gate", choices=("float64", "float32"), default="float64",
                        help="hold ORT against PyTorch float64 (default), or against PyTorch float32 on --device, "
                        "both at ORT's decisions")
    parser.add_argument("--selftest", action="store_true",
                        help="check nt_xent against a transcription of the reference NT_Xent")
    args = parser.parse_args()

    if bool(args.cases) == args.selftest:
        parser.error("give case directories or --selftest (exactly one)")
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = args.device
    if DEVICE.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(torch.device(DEVICE))}, TF32 off")
    if args.selftest:
        return selftest()
    print(f"PyTorch {torch.__version__}; {blas_kernel()}")

    status = 0
    for case_dir in args.cases:
        try:
            if not check_case(case_dir, args.dump_torch, args.loss_tol, args.tensor_tol, args.gate):
                status = max(status, 1)
        except CaseError as e:
            print(f"{case_dir}: ERROR unusable input: {e}")
            status = 2
    return status


def blas_kernel():
    """The BLAS PyTorch uses and, for OpenBLAS, the kernel it picked."""
    try:
        import ctypes
        for lib in ("libopenblas.so.0", "libopenblasp-r0.so"):
            try:
                handle = ctypes.CDLL(lib)
            except OSError:
                continue
            handle.openblas_get_corename.restype = ctypes.c_char_p
            forced = os.environ.get("OPENBLAS_CORETYPE")
            return (f"OpenBLAS kernel {handle.openblas_get_corename().decode()}"
                    + (f" (forced by OPENBLAS_CORETYPE={forced})" if forced else ""))
    except Exception as e:  # a report line, never a reason to stop
        return f"BLAS unknown ({e})"
    return "BLAS: not OpenBLAS"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a crash is not a failed case: exit 3, not 1
        import traceback
        traceback.print_exc()
        sys.exit(3)
