"""PyTorch eager reference for `burnish bench`: median time of one training step on the CPU, for the step kinds
burnish has, with burnish's semantics (docs/iam.md):

- plain:           SGD on CE over the labelled batch.
- sam:             ε = ρ g/‖g‖ from ∇L(θ); the gradient applied is ∇L(θ + ε), the θ + ε pass leaving BatchNorm's
                   running statistics alone.
- iam-d:           CE + β·KL(p(x; θ) ‖ p(x; θ + sg(δ*))) on the same batch x, K = 1: one ascent pass from Gaussian
                   noise of norm σ, one perturbed pass; gradient through both branches; the step's forward is x.
- fixmatch:        one forward over labelled weak + unlabeled weak + unlabeled strong (B + 2μB images); CE on the
                   labelled rows, pseudo-labels from the weak rows (T = 1, mask at τ = 0.95), CE on the strong rows.
- fixmatch-iam-d:  fixmatch + IAM-D over x = labelled weak + unlabeled weak, whose clean pass runs on x alone (so
                   BatchNorm normalises x in the clean and the perturbed passes), then the ascent and perturbed passes.

Same models as burnish (cnn-small, wrn-28-2 as in the FixMatch reference), same batch, same threads. It also prints
the step's FLOP count from the model's forward FLOPs (convolutions and linear layers; backward = 2× forward).

    python bench/torch_step.py --model cnn-small --kind plain --batch 128 --channels 1 --size 28 --threads 2
    python bench/torch_step.py --model wrn-28-2 --kind fixmatch-iam-d --batch 32 --mu 7 --channels 3 --size 32
"""
import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.profiler import record_function

# Phases the op-class profile (--profile) cannot tell from op names alone; burnish's src/profile.rs has the same.
LOSS, PERTURB = "burnish::loss", "burnish::perturb"


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


def forward_flops(model, c, size):
    """FLOPs (2 per multiply-add) of one image's forward through the convolutions and linear layers."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            total += 2 * k * out.numel()
        elif isinstance(m, nn.Linear):
            total += 2 * m.in_features * m.out_features * out.shape[0]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, c, size, size))
    model.train()
    for h in handles:
        h.remove()
    return total


class FrozenStats:
    """BatchNorm in train mode (batch statistics) that leaves the running statistics alone, for perturbed passes."""

    def __init__(self, model):
        self.bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

    def __enter__(self):
        self.saved = [m.momentum for m in self.bns]
        for m in self.bns:
            m.momentum = 0.0

    def __exit__(self, *exc):
        for m, v in zip(self.bns, self.saved):
            m.momentum = v


def global_norm(tensors):
    return torch.sqrt(sum((t * t).sum() for t in tensors)) + 1e-12


def kl_batchmean(p, log_q):
    with record_function(LOSS):
        return (p * (p.clamp_min(1e-6).log() - log_q)).sum() / p.shape[0]


def ce(logits, y):
    with record_function(LOSS):
        return F.cross_entropy(logits, y)


def iam_d_term(model, x, p, rho, sigma):
    """β = 1 · KL(p ‖ p(x; θ + sg(δ*))) with K = 1: p carries gradient; δ* is a constant."""
    names = [n for n, q in model.named_parameters()]
    params = [q for q in model.parameters()]
    n = sum(q.numel() for q in params)
    with FrozenStats(model):
        with record_function(PERTURB):
            delta = [torch.randn_like(q) * sigma / math.sqrt(n) for q in params]
            shifted = {name: (q.detach() + d).requires_grad_() for name, q, d in zip(names, params, delta)}
        ascent = kl_batchmean(p.detach(), F.log_softmax(functional_call(model, shifted, (x,)), 1))
        g = torch.autograd.grad(ascent, list(shifted.values()), allow_unused=True)
        with record_function(PERTURB):
            g = [torch.zeros_like(q) if gi is None else gi for q, gi in zip(params, g)]
            norm = global_norm(g)
            perturbed = {name: q + rho * gi / norm for name, q, gi in zip(names, params, g)}
        return kl_batchmean(p, F.log_softmax(functional_call(model, perturbed, (x,)), 1))


def step(kind, model, opt, batch, rho, sigma):
    opt.zero_grad(set_to_none=True)
    if kind in ("plain", "sam", "iam-d"):
        x, y = batch["x"], batch["y"]
        logits = model(x)
        loss = ce(logits, y)
        if kind == "iam-d":
            loss = loss + iam_d_term(model, x, F.softmax(logits, 1), rho, sigma)
        loss.backward()
        if kind == "sam":
            # A parameter outside the graph (wrn's unused bn1 in width-changing blocks) has no gradient and no ε.
            params = [q for q in model.parameters() if q.grad is not None]
            with record_function(PERTURB), torch.no_grad():
                norm = global_norm([q.grad for q in params])
                eps = [rho * q.grad / norm for q in params]
                for q, e in zip(params, eps):
                    q.add_(e)
            opt.zero_grad(set_to_none=True)
            with FrozenStats(model):
                ce(model(x), y).backward()
            with record_function(PERTURB), torch.no_grad():
                for q, e in zip(params, eps):
                    q.sub_(e)
    else:
        lw, uw, us, y = batch["lw"], batch["uw"], batch["us"], batch["y"]
        b, u = lw.shape[0], uw.shape[0]
        logits = model(torch.cat([lw, uw, us]))
        with record_function(LOSS):
            sup = F.cross_entropy(logits[:b], y)
            probs = F.softmax(logits[b:b + u].detach(), 1)
            conf, pseudo = probs.max(1)
            mask = (conf >= 0.95).float()
            unsup = (F.cross_entropy(logits[b + u:], pseudo, reduction="none") * mask).mean()
            loss = sup + unsup
        if kind == "fixmatch-iam-d":
            x = torch.cat([lw, uw])
            with FrozenStats(model):
                logits_x = model(x)
            with record_function(LOSS):
                p = F.softmax(logits_x, 1)
            loss = loss + iam_d_term(model, x, p, rho, sigma)
        loss.backward()
    opt.step()


# burnish's op classes (src/profile.rs), from the name of an op and of the autograd node or phase it runs in.
CONV = ("aten::conv2d", "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution",
        "aten::_slow_conv2d_forward", "aten::thnn_conv2d", "aten::_nnpack_spatial_convolution")
NORM_ACT = ("aten::batch_norm", "aten::_batch_norm_impl_index", "aten::native_batch_norm",
            "aten::_native_batch_norm_legit", "aten::relu", "aten::relu_", "aten::leaky_relu", "aten::leaky_relu_",
            "aten::clamp_min", "aten::clamp_min_", "aten::threshold")


def classify(event):
    """burnish's class of one profiler event's self time."""
    chain, e = [], event
    while e is not None:
        chain.append(e.name)
        e = e.cpu_parent
    if any(n.startswith("Optimizer.") for n in chain):
        return "optimizer"
    node = next((n for n in chain if n.startswith("autograd::engine::evaluate_function:")), None)
    if node is not None:
        if "ConvolutionBackward" in node:
            return "conv_backward"
        if any(k in node for k in ("BatchNormBackward", "ReluBackward", "LeakyReluBackward", "ThresholdBackward")):
            return "norm_act_backward"
        return "backward_other"
    if any(n == PERTURB for n in chain):
        return "perturb"
    if event.name in CONV or any(n in CONV for n in chain[1:]):
        return "conv_forward"
    if event.name in NORM_ACT or any(n in NORM_ACT for n in chain[1:]):
        return "norm_act_forward"
    if any(n == LOSS for n in chain):
        return "loss"
    if event.name.startswith("aten::") or event.name.startswith("autograd::"):
        return "forward_other"
    return "other"


def report_profile(events, steps, wall_ms):
    """Prints `profile.<class>_ms=` per step, as `burnish bench --profile` does."""
    classes = ["conv_forward", "conv_backward", "norm_act_forward", "norm_act_backward", "forward_other", "loss",
               "backward_other", "perturb", "optimizer", "other"]
    ms = dict.fromkeys(classes, 0.0)
    for e in events:
        ms[classify(e)] += e.self_cpu_time_total / 1e3 / steps
    total = sum(ms.values())
    for c in classes:
        print(f"profile.{c}_ms={ms[c]:.1f} share={ms[c] / max(total, 1e-9):.3f}")
    print(f"profile.step_ms={wall_ms:.1f} profile.timed_ms={total:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn-small")
    ap.add_argument("--kind", default="plain", choices=["plain", "sam", "iam-d", "fixmatch", "fixmatch-iam-d"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--mu", type=int, default=7)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rho", type=float, default=0.05)
    ap.add_argument("--sigma", type=float, default=1e-3)
    ap.add_argument("--profile", action="store_true", help="then time as many steps again by op class")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = cnn_small(args.channels, 10) if args.model == "cnn-small" else WideResNet(args.channels, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4)
    img = lambda n: torch.randn(n, args.channels, args.size, args.size)
    b, u = args.batch, args.batch * args.mu
    if args.kind.startswith("fixmatch"):
        batch = {"lw": img(b), "uw": img(u), "us": img(u), "y": torch.randint(0, 10, (b,))}
    else:
        batch = {"x": img(b), "y": torch.randint(0, 10, (b,))}
    per_image = forward_flops(model, args.channels, args.size)
    # Forward + backward ≈ 3 forwards; the images each pass of the step covers.
    passes = {
        "plain": [b],
        "sam": [b, b],
        "iam-d": [b, b, b],
        "fixmatch": [b + 2 * u],
        "fixmatch-iam-d": [b + 2 * u, b + u, b + u, b + u],
    }[args.kind]
    flops = 3 * per_image * sum(passes)
    times = []
    for i in range(args.steps + args.warmup):
        t = time.perf_counter()
        step(args.kind, model, opt, batch, args.rho, args.sigma)
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    params = sum(q.numel() for q in model.parameters())
    print(f"torch {torch.__version__}, {args.threads} threads, {args.model} ({params} params), kind {args.kind}")
    print(f"step_gflop={flops / 1e9:.3f} forward_mflop_per_image={per_image / 1e6:.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"step_ms_median={statistics.median(times) * 1e3:.1f} peak_rss_mib={rss:.0f}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            for _ in range(args.steps):
                step(args.kind, model, opt, batch, args.rho, args.sigma)
            wall = (time.perf_counter() - t) * 1e3 / args.steps
        report_profile(prof.events(), args.steps, wall)


if __name__ == "__main__":
    main()
