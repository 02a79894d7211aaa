#!/usr/bin/python3
"""Write an image folder of photo-like JPEG files for the augmentation benchmark.

    /usr/bin/python3 tools/bench/make_jpegs.py OUT [--count 200] [--classes 4]
        [--width 500] [--height 375] [--quality 90] [--seed 0]

OUT/class_K/img_NNNN.jpg, laid out as torchvision's ImageFolder and
simclr-ort's folder datasets expect. Each image is smooth colour gradients
and blobs (low frequencies, as in photos) plus fine noise (high frequencies,
which make the JPEG decoder work as on real photos), saved as baseline
4:2:0 JPEG at the given quality.
"""

import argparse
import os

import numpy as np
from PIL import Image


def photo_like(rng, width, height):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    image = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        a, b, phase = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
        image[..., c] = 0.5 + 0.25 * (a * x + b * y) + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * x + phase)
    for _ in range(6):  # soft blobs
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        image += weight * (rng.uniform(0, 1, 3) - image) * 0.8
    image += rng.normal(0, 0.04, image.shape).astype(np.float32)  # sensor-like noise
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), "RGB")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    total = 0
    for i in range(args.count):
        d = os.path.join(args.out, f"class_{i % args.classes}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"img_{i:04d}.jpg")
        photo_like(rng, args.width, args.height).save(path, "JPEG", quality=args.quality)
        total += os.path.getsize(path)
    print(f"wrote {args.count} JPEG files of {args.width}x{args.height} to {args.out} "
          f"({total / args.count / 1024:.0f} KiB each on average)")


if __name__ == "__main__":
    main()
