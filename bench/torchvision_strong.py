"""Reference figure for `cargo run --release --example bench_augment`: FixMatch's strong view on PIL.

The strong view of the FixMatch reference (kekmodel/FixMatch-pytorch; docs/augmentations.md): random horizontal flip,
random crop with 4 px reflect padding, RandAugmentMC(n=2, m=10) over the 14-op FixMatch pool, Cutout of half the
side, then ToTensor + Normalize. Runs on one thread and prints microseconds per image and views/s per core.

    python bench/torchvision_strong.py [--images 5000]
"""
import argparse
import random
import time

import numpy as np
import PIL
import PIL.ImageDraw
import PIL.ImageEnhance
import PIL.ImageOps
import torch
from PIL import Image
from torchvision import transforms

PARAMETER_MAX = 10


def _float(v, max_v):
    return float(v) * max_v / PARAMETER_MAX


def _int(v, max_v):
    return int(v * max_v / PARAMETER_MAX)


def AutoContrast(img, **kw):
    return PIL.ImageOps.autocontrast(img)


def Brightness(img, v, max_v, bias=0):
    return PIL.ImageEnhance.Brightness(img).enhance(_float(v, max_v) + bias)


def Color(img, v, max_v, bias=0):
    return PIL.ImageEnhance.Color(img).enhance(_float(v, max_v) + bias)


def Contrast(img, v, max_v, bias=0):
    return PIL.ImageEnhance.Contrast(img).enhance(_float(v, max_v) + bias)


def Equalize(img, **kw):
    return PIL.ImageOps.equalize(img)


def Identity(img, **kw):
    return img


def Posterize(img, v, max_v, bias=0):
    return PIL.ImageOps.posterize(img, _int(v, max_v) + bias)


def Rotate(img, v, max_v, bias=0):
    v = _int(v, max_v) + bias
    if random.random() < 0.5:
        v = -v
    return img.rotate(v)


def Sharpness(img, v, max_v, bias=0):
    return PIL.ImageEnhance.Sharpness(img).enhance(_float(v, max_v) + bias)


def ShearX(img, v, max_v, bias=0):
    v = _float(v, max_v) + bias
    if random.random() < 0.5:
        v = -v
    return img.transform(img.size, PIL.Image.AFFINE, (1, v, 0, 0, 1, 0))


def ShearY(img, v, max_v, bias=0):
    v = _float(v, max_v) + bias
    if random.random() < 0.5:
        v = -v
    return img.transform(img.size, PIL.Image.AFFINE, (1, 0, 0, v, 1, 0))


def Solarize(img, v, max_v, bias=0):
    return PIL.ImageOps.solarize(img, 256 - _int(v, max_v))


def TranslateX(img, v, max_v, bias=0):
    v = _float(v, max_v) + bias
    if random.random() < 0.5:
        v = -v
    v = int(v * img.size[0])
    return img.transform(img.size, PIL.Image.AFFINE, (1, 0, v, 0, 1, 0))


def TranslateY(img, v, max_v, bias=0):
    v = _float(v, max_v) + bias
    if random.random() < 0.5:
        v = -v
    v = int(v * img.size[1])
    return img.transform(img.size, PIL.Image.AFFINE, (1, 0, 0, 0, 1, v))


def CutoutAbs(img, v):
    w, h = img.size
    x0 = np.random.uniform(0, w)
    y0 = np.random.uniform(0, h)
    x0 = int(max(0, x0 - v / 2.0))
    y0 = int(max(0, y0 - v / 2.0))
    x1 = int(min(w, x0 + v))
    y1 = int(min(h, y0 + v))
    img = img.copy()
    PIL.ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), (127, 127, 127))
    return img


POOL = [
    (AutoContrast, None, None),
    (Brightness, 0.9, 0.05),
    (Color, 0.9, 0.05),
    (Contrast, 0.9, 0.05),
    (Equalize, None, None),
    (Identity, None, None),
    (Posterize, 4, 4),
    (Rotate, 30, 0),
    (Sharpness, 0.9, 0.05),
    (ShearX, 0.3, 0),
    (ShearY, 0.3, 0),
    (Solarize, 256, 0),
    (TranslateX, 0.3, 0),
    (TranslateY, 0.3, 0),
]


class RandAugmentMC:
    def __init__(self, n, m):
        self.n, self.m = n, m

    def __call__(self, img):
        for op, max_v, bias in random.choices(POOL, k=self.n):
            v = np.random.randint(1, self.m)
            if random.random() < 0.5:
                img = op(img, v=v, max_v=max_v, bias=bias)
        return CutoutAbs(img, int(32 * 0.5))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    np.random.seed(0)
    strong = transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.RandomCrop(size=32, padding=4, padding_mode="reflect"),
            RandAugmentMC(n=2, m=10),
            transforms.ToTensor(),
            transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ]
    )
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(256)]
    for img in images[:64]:
        strong(img)
    t0 = time.perf_counter()
    for i in range(args.images):
        strong(images[i % len(images)])
    dt = time.perf_counter() - t0
    print(f"torch {torch.__version__} torchvision {transforms.__name__.split('.')[0]} PIL {PIL.__version__}")
    print(f"strong 32x32 RGB: {dt / args.images * 1e6:.1f} us/image (1 thread)")
    print(f"strong_views_per_s_per_core={args.images / dt:.0f}")


if __name__ == "__main__":
    main()
