#!/usr/bin/env bash
# Issue 6 evidence: SimCLR vs SimCLR + IAM-D (projection outputs) vs a randomly initialised encoder on Fashion-MNIST,
# 3 seeds, the shipped recipes shortened to STEPS steps. Prints one line per run and a markdown table at the end.
# Usage: bash bench/evidence_simclr.sh   (STEPS=100 OUT=runs/evidence-simclr BURNISH=target/release/burnish)
set -euo pipefail
B=${BURNISH:-target/release/burnish}
STEPS=${STEPS:-100}
OUT=${OUT:-runs/evidence-simclr}
mkdir -p "$OUT"
: > "$OUT/results.tsv"
for seed in 0 1 2; do
  for r in simclr simclr-iam; do
    log="$OUT/$r-$seed.log"
    "$B" train "recipes/fashion-mnist/$r.toml" --quiet --runs-dir "$OUT" --set seed=$seed \
      --set schedule.steps=$STEPS --set schedule.warmup=$((STEPS / 10)) \
      --set eval.probe_every=$STEPS --set checkpoint.every=$STEPS > "$log"
    dir=$(sed -n 's/^run folder: //p' "$log")
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], s["probe_acc"], s["knn_acc"], round(s["wall_s"]), sep="\t")' \
      "$dir/summary.json" "$r" "$seed" | tee -a "$OUT/results.tsv"
    if [ "$r" = simclr ]; then
      "$B" probe "$dir/checkpoints/step-$(printf %09d $STEPS).ckpt" --random-init > "$OUT/random-$seed.probe"
      tail -1 "$OUT/random-$seed.probe" | sed -E "s/linear_acc=([0-9.]+) knn_acc=([0-9.]+)/random-init\t$seed\t\1\t\2\t0/" \
        | tee -a "$OUT/results.tsv"
    fi
  done
done
python3 - "$OUT/results.tsv" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| encoder | linear probe acc (%) | kNN acc (%) | wall s per run |")
print("|---|---|---|---|")
for name in ["random-init", "simclr", "simclr-iam"]:
    r = [x for x in rows if x[0] == name]
    lin = [100 * float(x[2]) for x in r]; knn = [100 * float(x[3]) for x in r]; wall = [float(x[4]) for x in r]
    print(f"| {name} | {st.mean(lin):.2f} ± {st.stdev(lin):.2f} | {st.mean(knn):.2f} ± {st.stdev(knn):.2f} | {st.mean(wall):.0f} |")
PY
