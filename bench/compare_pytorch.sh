#!/usr/bin/env bash
# burnish against PyTorch eager on the same model, batch, threads and step kind, the two programs alternating over
# ROUNDS rounds so both see the same machine load. Prints a markdown table: each program's median step time with its
# min–max over rounds, the median of the per-round ratios (burnish / PyTorch) with their min–max, and the GFLOP/s each
# achieves as a share of the machine's peak (FLOP per step from bench/torch_step.py's count of the model).
# Usage: bash bench/compare_pytorch.sh
#   (ROUNDS=3 STEPS=5 THREADS=2 PYTHON=python3 BURNISH=target/release/burnish KINDS="plain sam iam-d fixmatch
#    fixmatch-iam-d" MODELS="cnn-small wrn-28-2" PEAK_GFLOPS=<from the CPU's vector width, cores and clock>)
# PYTHON needs torch (docs/benchmarks.md's figures: PyTorch 2.15 in a venv).
set -euo pipefail
b=${BURNISH:-target/release/burnish}
py=${PYTHON:-python3}
rounds=${ROUNDS:-3} steps=${STEPS:-5} threads=${THREADS:-2}
kinds=${KINDS:-plain sam iam-d fixmatch fixmatch-iam-d}
models=${MODELS:-cnn-small wrn-28-2}
export RAYON_NUM_THREADS=$threads

# Peak f32 FLOP/s of `threads` cores: FMA units × lanes × 2 per cycle (AVX-512: 2 × 16 × 2, AVX2 + FMA: 2 × 8 × 2),
# at the highest clock the CPU reports.
peak=${PEAK_GFLOPS:-$(python3 - "$threads" <<'PY'
import re, sys
info = open("/proc/cpuinfo").read()
flags = set(re.search(r"^flags\s*:\s*(.*)$", info, re.M).group(1).split())
per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8
mhz = max(float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M))
try:
    mhz = max(mhz, float(open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read()) / 1000)
except OSError:
    pass
print(f"{int(sys.argv[1]) * per_cycle * mhz / 1000:.0f}")
PY
)}

# shellcheck source=bench/step_kinds.sh
source "$(dirname "$0")/step_kinds.sh"

echo "burnish $("$b" --version 2>/dev/null | head -n 1), $("$py" -c 'import torch; print("torch", torch.__version__)'), $threads threads, peak ${peak} GFLOP/s, $rounds rounds of $steps steps" >&2
rows=()
for model in $models; do
  for kind in $kinds; do
    ours=() theirs=() gflop=
    for ((i = 1; i <= rounds; i++)); do
      # shellcheck disable=SC2046
      out=$("$b" bench $(burnish_args "$model" "$kind") --steps "$steps" --warmup 1)
      ours+=("$(echo "$out" | grep -o 'step_ms_median=[0-9.]*' | tail -n 1 | cut -d= -f2)")
      # shellcheck disable=SC2046
      out=$("$py" bench/torch_step.py $(torch_args "$model" "$kind") --threads "$threads" --steps "$steps" --warmup 1)
      theirs+=("$(echo "$out" | grep -o 'step_ms_median=[0-9.]*' | cut -d= -f2)")
      gflop=$(echo "$out" | grep -o 'step_gflop=[0-9.]*' | cut -d= -f2)
      echo "$model $kind round $i: burnish ${ours[-1]} ms, pytorch ${theirs[-1]} ms" >&2
    done
    rows+=("$model $kind $gflop ${ours[*]} / ${theirs[*]}")
  done
done

python3 - "$peak" "${rows[@]}" <<'PY'
import statistics as st, sys
peak = float(sys.argv[1])
print("| model | step | GFLOP/step | burnish ms (min–max) | PyTorch ms (min–max) | burnish / PyTorch (min–max) | burnish % of peak | PyTorch % of peak |")
print("|---|---|---|---|---|---|---|---|")
for row in sys.argv[2:]:
    head, theirs = row.split(" / ")
    model, kind, gflop, *ours = head.split()
    ours, theirs, gflop = [float(x) for x in ours], [float(x) for x in theirs.split()], float(gflop)
    ratio = [a / b for a, b in zip(ours, theirs)]
    share = lambda ms: 100 * gflop / (ms / 1e3) / peak
    print(f"| {model} | {kind} | {gflop:.1f} | {st.median(ours):.0f} ({min(ours):.0f}–{max(ours):.0f}) "
          f"| {st.median(theirs):.0f} ({min(theirs):.0f}–{max(theirs):.0f}) "
          f"| {st.median(ratio):.2f} ({min(ratio):.2f}–{max(ratio):.2f}) "
          f"| {share(st.median(ours)):.0f} % | {share(st.median(theirs)):.0f} % |")
PY
