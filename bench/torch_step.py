"""PyTorch eager reference for `burnish bench`: median time of a plain SGD training step on the CPU.

Same models as burnish (SPEC §6: cnn-small, wrn-28-2 as in the FixMatch reference), same batch, same threads.

    python bench/torch_step.py --model cnn-small --batch 128 --channels 1 --size 28 --threads 2
    python bench/torch_step.py --model wrn-28-2 --batch 64 --channels 3 --size 32 --threads 2
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def cnn_small(c, classes):
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(c, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes),
    )


class BasicBlock(nn.Module):
    def __init__(self, i, o, stride, activate_before_residual=False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(i, momentum=0.001)
        self.relu1 = nn.LeakyReLU(0.1, inplace=True)
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o, momentum=0.001)
        self.relu2 = nn.LeakyReLU(0.1, inplace=True)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.equal = i == o
        self.shortcut = None if self.equal else nn.Conv2d(i, o, 1, stride, 0, bias=False)
        self.abr = activate_before_residual

    def forward(self, x):
        if not self.equal and self.abr:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(out if self.equal else x))))
        return (x if self.equal else self.shortcut(x)) + out


class WideResNet(nn.Module):
    def __init__(self, c, classes, depth=28, widen=2):
        super().__init__()
        ch = [16, 16 * widen, 32 * widen, 64 * widen]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(c, ch[0], 3, 1, 1, bias=False)

        def group(i, o, stride, abr):
            return nn.Sequential(*[BasicBlock(i if k == 0 else o, o, stride if k == 0 else 1, abr) for k in range(n)])

        self.block1 = group(ch[0], ch[1], 1, True)
        self.block2 = group(ch[1], ch[2], 2, False)
        self.block3 = group(ch[2], ch[3], 2, False)
        self.bn = nn.BatchNorm2d(ch[3], momentum=0.001)
        self.relu = nn.LeakyReLU(0.1, inplace=True)
        self.fc = nn.Linear(ch[3], classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.adaptive_avg_pool2d(self.relu(self.bn(x)), 1).flatten(1)
        return self.fc(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn-small")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = cnn_small(args.channels, 10) if args.model == "cnn-small" else WideResNet(args.channels, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    times = []
    for i in range(args.steps + 3):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {args.threads} threads, {args.model} ({params} params), batch {args.batch}")
    print(f"step_ms_median={statistics.median(times) * 1e3:.1f}")


if __name__ == "__main__":
    main()
