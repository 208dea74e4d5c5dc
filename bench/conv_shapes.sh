#!/usr/bin/env bash
# burnish's convolutions against PyTorch's (oneDNN), shape by shape and pass by pass, and the gemm crate against
# MKL's sgemm on each shape's im2col product (docs/kernels.md, "Shape by shape"). The two programs alternate over
# ROUNDS runs so both see the same machine load; each run takes medians over its own PASSES rounds, and the table
# gives the median over runs. The last rows weight each shape by how often its model runs it in one forward.
# Usage: bash bench/conv_shapes.sh
#   (ROUNDS=2 PASSES=7 THREADS=2 PYTHON=python3 BIN=target/release/examples/bench_conv_shapes)
# Build BIN first: cargo build --release --example bench_conv_shapes. PYTHON needs torch.
set -euo pipefail
bin=${BIN:-target/release/examples/bench_conv_shapes}
py=${PYTHON:-python3}
rounds=${ROUNDS:-2} passes=${PASSES:-7} threads=${THREADS:-2}
export RAYON_NUM_THREADS=$threads
here=$(dirname "$0")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" --list > "$out/shapes"
for ((i = 1; i <= rounds; i++)); do
  "$bin" --rounds "$passes" > "$out/burnish.$i"
  "$py" "$here/torch_conv_shapes.py" --threads "$threads" --rounds "$passes" < "$out/shapes" > "$out/torch.$i"
  echo "round $i done" >&2
done
head -n 1 "$out/burnish.1" "$out/torch.1" >&2

python3 - "$out" "$rounds" <<'PY'
import statistics as st, sys
from collections import defaultdict
out, rounds = sys.argv[1], int(sys.argv[2])
shapes = [l.split() for l in open(f"{out}/shapes") if l.strip()]
def load(prog):
    ms = defaultdict(list)
    for i in range(1, rounds + 1):
        for l in open(f"{out}/{prog}.{i}"):
            if l.startswith("#"):
                continue
            model, label, name, t, _ = l.split()
            ms[(model, label, name)].append(float(t))
    return {key: st.median(v) for key, v in ms.items()}
ours, theirs = load("burnish"), load("torch")
def cell(key):
    if key not in ours:
        return "–"
    return f"{ours[key]:.2f} / {theirs[key]:.2f} ({ours[key] / theirs[key]:.2f}×)"
def gflops(key, macs):
    return f"{2 * macs / ours[key] / 1e6:.0f} / {2 * macs / theirs[key] / 1e6:.0f}"
print("| model | shape | count | MFLOP a pass | forward ms | input grad ms | weight grad ms | gemm alone, 1 thread, GFLOP/s |")
print("|---|---|---|---|---|---|---|---|")
totals = defaultdict(lambda: [0.0, 0.0])
for f in shapes:
    model, label = f[0], f[1]
    n, c, h, w, c_out, k, stride, count, _dx, m, cols, kk = map(int, f[2:])
    oh, ow = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
    macs = n * c_out * c * k * k * oh * ow
    shape = f"{label} {c}→{c_out} {k}×{k}/{stride} {h}×{w}"
    cells = [cell((model, label, p)) for p in ("forward", "input_grad", "weight_grad")]
    g = gflops((model, label, "gemm_1t"), m * cols * kk)
    print(f"| {model} | {shape} | {count} | {2 * macs / 1e6:.0f} | " + " | ".join(cells) + f" | {g} ({m}×{cols}×{kk}) |")
    for p in ("forward", "input_grad", "weight_grad"):
        key = (model, label, p)
        if key in ours:
            totals[(model, p)][0] += count * ours[key]
            totals[(model, p)][1] += count * theirs[key]
print()
print("| model | pass | burnish ms a forward + backward | PyTorch ms | burnish / PyTorch |")
print("|---|---|---|---|---|")
for (model, p), (a, b) in totals.items():
    print(f"| {model} | {p} | {a:.1f} | {b:.1f} | {a / b:.2f}× |")
PY
