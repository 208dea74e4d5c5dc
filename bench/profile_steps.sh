#!/usr/bin/env bash
# Where each step kind's time goes, burnish beside PyTorch eager: `burnish bench --profile` (src/profile.rs's timers)
# and `bench/torch_step.py --profile` (torch.profiler, ops mapped to the same classes) on the same model, batch,
# threads and step, one after the other. Prints one markdown table per model: milliseconds per step by op class,
# "burnish / PyTorch", then peak resident memory and burnish's heap allocations per step (docs/kernels.md, "Profile").
# Usage: bash bench/profile_steps.sh
#   (STEPS=3 THREADS=2 PYTHON=python3 BURNISH=target/release/burnish KINDS="plain sam iam-d fixmatch fixmatch-iam-d"
#    MODELS="cnn-small wrn-28-2")
set -euo pipefail
b=${BURNISH:-target/release/burnish}
py=${PYTHON:-python3}
steps=${STEPS:-3} threads=${THREADS:-2}
kinds=${KINDS:-plain sam iam-d fixmatch fixmatch-iam-d}
models=${MODELS:-cnn-small wrn-28-2}
export RAYON_NUM_THREADS=$threads
# shellcheck source=bench/step_kinds.sh
source "$(dirname "$0")/step_kinds.sh"

flags=$(grep -o -w -m1 -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "# $(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags: ${flags}$threads threads, $steps profiled steps"
for model in $models; do
  rows=()
  for kind in $kinds; do
    # shellcheck disable=SC2046
    ours=$("$b" bench $(burnish_args "$model" "$kind") --steps "$steps" --warmup 1 --profile)
    # shellcheck disable=SC2046
    theirs=$("$py" bench/torch_step.py $(torch_args "$model" "$kind") --threads "$threads" --steps "$steps" --warmup 1 \
      --profile 2>/dev/null)
    rows+=("$kind"$'\t'"$(echo "$ours" | tr '\n' ' ')"$'\t'"$(echo "$theirs" | tr '\n' ' ')")
    echo "$model $kind done" >&2
  done
  python3 - "$model" "${rows[@]}" <<'PY'
import re, sys
model, rows = sys.argv[1], sys.argv[2:]
def keys(text):
    return {k: float(v) for k, v in re.findall(r"([\w.]+)=([\d.]+)", text)}
# (column, burnish classes summed, PyTorch classes summed)
cols = [
    ("conv fwd", ["conv_forward"], ["conv_forward"]),
    ("conv bwd (input + weight)", ["conv_input_grad", "conv_weight_grad"], ["conv_backward"]),
    ("BN + act fwd", ["norm_act_forward"], ["norm_act_forward"]),
    ("BN + act bwd", ["norm_act_backward"], ["norm_act_backward"]),
    ("other fwd (pool, linear, add)", ["forward_other"], ["forward_other"]),
    ("loss math", ["loss"], ["loss"]),
    ("other bwd + autodiff", ["backward_other", "gradients"], ["backward_other"]),
    ("perturb / restore", ["perturb"], ["perturb"]),
    ("optimiser + EMA", ["optimizer", "ema"], ["optimizer"]),
    ("rest", ["checks", "other"], ["other"]),
]
print(f"\n## {model}: ms per step, burnish / PyTorch\n")
print("| kind | step | " + " | ".join(c for c, _, _ in cols) + " | peak RSS MiB | burnish allocs / MiB per step |")
print("|---|" + "---|" * (len(cols) + 3))
for row in rows:
    kind, ours, theirs = row.split("\t")
    o, t = keys(ours), keys(theirs)
    cell = lambda names, d: sum(d.get(f"profile.{n}_ms", 0.0) for n in names)
    cells = [f"{cell(a, o):.0f} / {cell(b, t):.0f}" for _, a, b in cols]
    print(f"| {kind} | {o['profile.step_ms']:.0f} / {t['profile.step_ms']:.0f} | " + " | ".join(cells)
          + f" | {o['peak_rss_mib']:.0f} / {t['peak_rss_mib']:.0f}"
          + f" | {o['profile.allocations_per_step']:.0f} / {o['profile.allocated_mib_per_step']:.0f} |")
PY
done
