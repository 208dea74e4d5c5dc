#!/usr/bin/env bash
# Issue 5 evidence: EMA test error, 3 seeds (each its own labelled split), for the five shipped fashion-mnist
# recipes (25 labels per class) shortened to STEPS steps (EMA decay DECAY for the short runs). Prints a markdown table.
# Usage: bash bench/evidence_fixmatch.sh   (STEPS=300 DECAY=0.99 OUT=runs/evidence-fixmatch BURNISH=target/release/burnish)
# The shipped recipes at full length (roughly 13 hours on 2 CPU cores for the 15 runs, estimated from the step benchmarks):
#   STEPS=3000 DECAY=0.999 OUT=runs/evidence-fixmatch-full bash bench/evidence_fixmatch.sh
# The synthetic quick-start comparison (README "Quick start, measured"):
#   RECIPE_DIR=recipes RECIPES="quickstart-supervised quickstart-fixmatch quickstart" STEPS=400 bash bench/evidence_fixmatch.sh
set -euo pipefail
B=${BURNISH:-target/release/burnish}
STEPS=${STEPS:-300}
DECAY=${DECAY:-0.99}
OUT=${OUT:-runs/evidence-fixmatch}
RECIPE_DIR=${RECIPE_DIR:-recipes/fashion-mnist}
RECIPES=${RECIPES:-supervised fixmatch fixmatch-iam supervised-sam supervised-iam}
mkdir -p "$OUT"
# Resumable: a run already in results.tsv is skipped, so the full-length table can be gathered over several sessions.
touch "$OUT/results.tsv"
for seed in 0 1 2; do
  for r in $RECIPES; do
    if grep -q "^$r	$seed	" "$OUT/results.tsv"; then continue; fi
    log="$OUT/$r-$seed.log"
    "$B" train "$RECIPE_DIR/$r.toml" --quiet --runs-dir "$OUT" --set seed=$seed \
      --set schedule.steps=$STEPS --set ema.decay=$DECAY --set eval.every=0 --set checkpoint.every=$STEPS > "$log"
    dir=$(sed -n 's/^run folder: //p' "$log")
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], s["test_acc_ema"], s["test_acc"], round(s["wall_s"]), sep="\t")' \
      "$dir/summary.json" "$r" "$seed" | tee -a "$OUT/results.tsv"
  done
done
python3 - "$OUT/results.tsv" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| recipe | EMA test error (%) | raw test error (%) | wall s per run |")
print("|---|---|---|---|")
for name in dict.fromkeys(x[0] for x in rows):
    r = [x for x in rows if x[0] == name]
    ema = [100 * (1 - float(x[2])) for x in r]; raw = [100 * (1 - float(x[3])) for x in r]
    sd = lambda v: st.stdev(v) if len(v) > 1 else 0.0
    print(f"| {name} | {st.mean(ema):.2f} ± {sd(ema):.2f} | {st.mean(raw):.2f} ± {sd(raw):.2f} | {st.mean([float(x[4]) for x in r]):.0f} |")
PY
