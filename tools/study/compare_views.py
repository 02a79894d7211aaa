#!/usr/bin/python3
"""Remake simclr-ort's SimCLR views with torchvision and measure the difference.

    go run ./tools/study/viewdump -n 2000 -out DIR
    /usr/bin/python3 tools/study/compare_views.py DIR

For every view written by tools/study/viewdump (the random decisions of
simclr-ort's augment.Pipeline and its output), the same decisions are applied
with torchvision's functional transforms to the PIL image, in the reference's
order and on its path: RGB conversion, resized_crop (bilinear), hflip,
adjust_brightness/contrast/saturation/hue in the drawn order, rgb_to_grayscale
(3 channels), to_tensor. The PIL path rounds to 8 bits after every operation;
simclr-ort's jitter works in float32 on [0,1]. The report gives the mean and
largest absolute pixel difference, over all views and by whether colour
jitter was applied, and the mean and standard deviation of the pixels of
both sets (what a network would see on average).
"""

import sys

sys.dont_write_bytecode = True

import gzip
import json
import os

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

OPS = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
FACTORS = ("Brightness", "Contrast", "Saturation", "Hue")


def fmnist_train(path="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    with gzip.open(path) as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def remake(image, p, size):
    img = Image.fromarray(image, "L").convert("RGB")
    c = p["Crop"]
    top, left = c["Min"]["Y"], c["Min"]["X"]
    height, width = c["Max"]["Y"] - top, c["Max"]["X"] - left
    img = F.resized_crop(img, top, left, height, width, [size, size], InterpolationMode.BILINEAR)
    if p["Flip"]:
        img = F.hflip(img)
    if p["Jitter"]:
        for op in p["Order"]:
            img = OPS[op](img, p[FACTORS[op]])
    if p["Gray"]:
        img = F.rgb_to_grayscale(img, num_output_channels=3)
    return F.to_tensor(img).numpy()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    ours = np.load(os.path.join(directory, "views.npy"))
    with open(os.path.join(directory, "params.json")) as f:
        meta = json.load(f)
    images = fmnist_train()
    size = ours.shape[-1]
    torch.set_num_threads(1)
    theirs = np.stack([remake(images[m["index"]], m["params"], size) for m in meta])
    diff = np.abs(ours - theirs).reshape(len(meta), -1)
    jitter = np.array([m["params"]["Jitter"] for m in meta])
    print(f"{len(meta)} views, {size}x{size}: |simclr-ort - torchvision(PIL)| mean {diff.mean():.5f}, "
          f"max {diff.max():.4f} (1/255 = {1 / 255:.4f})")
    for name, mask in (("with jitter", jitter), ("without jitter", ~jitter)):
        if mask.any():
            d = diff[mask]
            print(f"  {name} ({mask.sum()} views): mean {d.mean():.5f}, max {d.max():.4f}, "
                  f"views with max > 2/255: {(d.max(axis=1) > 2 / 255).sum()}")
    print(f"pixel mean/std: simclr-ort {ours.mean():.4f}/{ours.std():.4f}, "
          f"torchvision {theirs.mean():.4f}/{theirs.std():.4f}")
    worst = int(diff.max(axis=1).argmax())
    print(f"worst view {worst}: max {diff[worst].max():.4f}, params {json.dumps(meta[worst]['params'])}")


if __name__ == "__main__":
    main()
