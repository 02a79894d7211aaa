#!/usr/bin/python3
"""Load a simclr-ort safetensors export into torchvision's ResNet and compare
its eval-mode features (and the projector's z) with ONNX Runtime's.

    torchvision_load.py ENCODER.safetensors IMAGES.npy FEATURES.npy [PROJECTION.npy]

The file is read with json and numpy only (Debian has no safetensors
package), as a PyTorch user without the safetensors package would. It
prints one line "max relative difference: features F projection P
(missing [...], unexpected [...])" and exits non-zero when loading reports
anything missing but fc.weight and fc.bias, or anything unexpected.
"""

import json
import sys

import numpy as np
import torch
import torchvision
from torch import nn

DTYPES = {"F32": "<f4", "I64": "<i8"}


def load_safetensors(path):
    """The tensors and metadata of a safetensors file, with json and numpy."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n:]
    state = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        state[name] = torch.from_numpy(a.copy())
    return state, meta


def main():
    enc_path, images_path, features_path = sys.argv[1:4]
    projection_path = sys.argv[4] if len(sys.argv) > 4 else None
    torch.set_num_threads(1)
    state, meta = load_safetensors(enc_path)
    model = getattr(torchvision.models, meta["simclr.arch"])()
    if meta["simclr.stem"] == "cifar":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if sorted(missing) != ["fc.bias", "fc.weight"] or unexpected:
        sys.exit(f"load_state_dict: missing {missing} (want only fc.weight, fc.bias), unexpected {unexpected}")
    model.fc = nn.Identity()
    model.eval()
    images = torch.from_numpy(np.load(images_path))
    want = np.load(features_path)
    with torch.no_grad():
        h = model(images)
    scale = float(np.abs(want).max())
    feat_rel = float(np.abs(h.numpy() - want).max()) / scale
    line = f"max relative difference: features {feat_rel:.3e}"
    if projection_path:
        proj_state, _ = load_safetensors(enc_path[: -len(".safetensors")] + ".projector.safetensors")
        d, p = proj_state["0.weight"].shape[1], proj_state["2.weight"].shape[0]
        projector = nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU(), nn.Linear(d, p, bias=False))
        projector.load_state_dict(proj_state)  # strict
        want_z = np.load(projection_path)
        with torch.no_grad():
            z = projector(h).numpy()
        line += f" projection {float(np.abs(z - want_z).max()) / float(np.abs(want_z).max()):.3e}"
    tracked = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    print(f"{line} (missing {sorted(missing)}, unexpected {unexpected}, "
          f"{len(state)} tensors, num_batches_tracked {sorted(set(tracked.values()))})")


if __name__ == "__main__":
    main()
