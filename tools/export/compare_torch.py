#!/usr/bin/python3
"""Check that an exported simclr-ort encoder computes, in ONNX Runtime, what
torchvision's ResNet computes in PyTorch with the same weights.

    /usr/bin/python3 tools/export/compare_torch.py [--checkpoint RUNDIR/checkpoint.ckpt]
        [--arch resnet18 --stem imagenet --image-size 28] [--images 16] [--simclr-ort BIN]

1. `simclr-ort export` writes the encoder (from --checkpoint, or --random-init
   with the configuration flags, running statistics then at their defaults);
2. the script writes --images random RGB PNG files at the image size (so the
   test transform is only the division by 255) and runs `simclr-ort embed` on
   them: features from ONNX Runtime, batch size 5 (not the training batch);
3. it loads the file's initializers (named as PyTorch's state_dict,
   "encoder.*") into torchvision's ResNet with fc removed, in eval mode, and
   computes the features of the same images.
It passes when max |ORT - PyTorch| <= 1e-4 x max |PyTorch feature| and exits
non-zero otherwise. Run it from the repository root (Debian's python3-torch,
python3-onnx).
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from reference import SimCLR  # noqa: E402

TOLERANCE = 1e-4


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--stem", default="imagenet")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--simclr-ort", default=None, help="simclr-ort binary (default: go run ./cmd/simclr-ort)")
    args = p.parse_args()
    cli = [args.simclr_ort] if args.simclr_ort else ["go", "run", "./cmd/simclr-ort"]
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "encoder.onnx")
        export = cli + ["export", "--out", model_path]
        if args.checkpoint:
            export += ["--checkpoint", args.checkpoint]
        else:
            export += ["--random-init", "--arch", args.arch, "--stem", args.stem, "--image-size", str(args.image_size)]
        subprocess.run(export, check=True)
        model = onnx.load(model_path)
        meta = {m.key: m.value for m in model.metadata_props}
        size, arch, stem = int(meta["simclr.image_size"]), meta["simclr.arch"], meta["simclr.stem"]

        rng = np.random.default_rng(0)
        folder = os.path.join(tmp, "images", "any")
        os.makedirs(folder)
        pixels = []
        for i in range(args.images):
            img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
            Image.fromarray(img, "RGB").save(os.path.join(folder, f"{i:03d}.png"))
            pixels.append(img)
        feats_path = os.path.join(tmp, "features.npy")
        subprocess.run(cli + ["embed", "--encoder", model_path, "--data", "folder:" + os.path.join(tmp, "images"),
                              "--batch-size", "5", "--out", feats_path], check=True)
        ort_features = np.load(feats_path)

        encoder = SimCLR(arch, stem, 8).encoder
        state = {i.name[len("encoder."):]: torch.from_numpy(numpy_helper.to_array(i).copy())
                 for i in model.graph.initializer if i.name.startswith("encoder.")}
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            sys.exit(f"weights do not match torchvision's ResNet: missing {missing}, unexpected {unexpected}")
        encoder.eval()
        batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            torch_features = encoder(batch).numpy()

    scale = float(np.abs(torch_features).max())
    diff = float(np.abs(ort_features - torch_features).max())
    ok = diff <= TOLERANCE * scale
    print(f"{meta['simclr.config']} at step {meta['simclr.training_steps']}: {args.images} images, "
          f"max |ORT - PyTorch| = {diff:.3g}, feature scale {scale:.3g}, relative {diff / scale:.2e} "
          f"(tolerance {TOLERANCE:g}): {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
