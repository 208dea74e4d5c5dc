#!/usr/bin/env bash
# Fashion-MNIST evidence: EMA test error of the shipped fashion-mnist recipes (25 labels per class), 5 seeds for
# fixmatch, fixmatch-iam and fixmatch-ggcr, 3 for the others (each seed its own labelled split, the same split for every recipe),
# optionally shortened to STEPS steps (with EMA decay DECAY). Prints a markdown table, then the paired differences by
# seed with their paired t statistic.
# Usage: bash bench/evidence_fixmatch.sh
#   (STEPS=<recipe's> DECAY=<recipe's> JOBS=2 THREADS=1 OUT=runs/evidence-fixmatch-<STEPS or full>
#    FIXMATCH_SEEDS=5 SEEDS=3 FIRST_SEED=0 BURNISH=target/release/burnish; THREADS is the rayon threads of each run;
#    FIRST_SEED skips the seeds below it, so that two invocations can share OUT without running the same seed)
# docs/evidence.md's Fashion-MNIST table with the corrected IAM (the recipes' full length), continuing from the rows
# committed so far:
#   mkdir -p runs/evidence-fixmatch-v2 && cp -n bench/evidence_fashion_mnist_v2_results.tsv runs/evidence-fixmatch-v2/results.tsv
#   OUT=runs/evidence-fixmatch-v2 bash bench/evidence_fixmatch.sh
# The first 8 rows of bench/evidence_fashion_mnist_v2_results.tsv come from a build of 44299fb, the later ones from a
# build of c7208d9, and those from 2026-12-01 on from a build of 6f7195b (the fixmatch-iam-subbatch rows, whose key is
# newer, from a build of 305a917, the fixmatch-ggcr rows from a build of 2111ece); tests/fingerprint.rs shows that they
# all train bit-identically. Keep the build a
# run started with until it ends (copy it aside, e.g. BURNISH=/work/evidence-bin/burnish): a later build may write a
# different resolved recipe, which resuming refuses. The GGCR rows need a build that has the stage, in their own invocation:
#   RECIPES=fixmatch-ggcr BURNISH=target/release/burnish OUT=runs/evidence-fixmatch-v2 bash bench/evidence_fixmatch.sh
# The synthetic quick-start comparison (docs/evidence.md, "FixMatch and IAM-D on the synthetic data"):
#   RECIPE_DIR=recipes RECIPES="quickstart-supervised quickstart-fixmatch quickstart" STEPS=400 bash bench/evidence_fixmatch.sh
#
# JOBS runs go at once, each on one rayon thread: at these batch sizes a second thread speeds one cnn-small run up by
# only ~12 %, so on 2 cores two single-threaded runs finish in little more than the time of one.
set -euo pipefail
export B=${BURNISH:-target/release/burnish}
export STEPS=${STEPS:-} DECAY=${DECAY:-}
export OUT=${OUT:-runs/evidence-fixmatch-${STEPS:-full}}
export RECIPE_DIR=${RECIPE_DIR:-recipes/fashion-mnist}
JOBS=${JOBS:-2}
# In table order; runs start in the reverse order, which is roughly the most expensive first, so JOBS runs at once
# end close together.
RECIPES=${RECIPES:-supervised supervised-sam supervised-iam fixmatch fixmatch-iam fixmatch-iam-ascent fixmatch-iam-subbatch
  fixmatch-ggcr}
mkdir -p "$OUT"
# Resumable: a run already in results.tsv is skipped, so a long table can be gathered over several sessions.
touch "$OUT/results.tsv"

run_one() {
  # Each (recipe, seed) has its own folder of runs, so an interrupted run is found again and resumed from its latest
  # checkpoint (checkpoints every 100 steps; Ctrl-C writes one too) instead of started over.
  local r=$1 seed=$2 home="$OUT/$1-$2" log="$OUT/$1-$2.log" dir
  local -a set=(--set "seed=$seed" --set eval.every=0 --set checkpoint.every=100) resume=()
  [ -n "$STEPS" ] && set+=(--set "schedule.steps=$STEPS")
  [ -n "$DECAY" ] && set+=(--set "ema.decay=$DECAY")
  dir=$(find "$home" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1 || true)
  if [ -n "$dir" ] && [ -n "$(ls "$dir/checkpoints" 2>/dev/null)" ]; then
    resume=(--resume "$dir")
    rm -f "$dir/summary.json"  # a stale one from an earlier invocation must not be counted again
  else
    rm -rf "$home"
  fi
  local rc=0
  RAYON_NUM_THREADS=${THREADS:-1} "$B" train "$RECIPE_DIR/$r.toml" --quiet --runs-dir "$home" "${set[@]}" "${resume[@]}" \
    >> "$log" 2>&1 || rc=$?
  case $rc in
    0) ;;
    # SIGINT / SIGTERM: the run wrote a checkpoint (and, unless signalled twice, its summary) and stopped.
    130 | 143) ;;
    *) echo "$r seed $seed failed with exit code $rc (see $log)" >&2; return "$rc" ;;
  esac
  dir=$(find "$home" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  if [ ! -f "$dir/summary.json" ]; then
    echo "$r seed $seed stopped; run the script again to resume it" >&2
    return 0
  fi
  # One read of summary.json: wall_s counts one invocation, so a resumed run's time is the sum over its invocations;
  # an interrupted run (exit 3) adds its time and no row.
  local row status=0
  row=$(python3 -c 'import json, sys
summary, walls, r, seed = sys.argv[1:]
s = json.load(open(summary))
with open(walls, "a") as f:
    f.write("%s\n" % s["wall_s"])
if s["interrupted"]:
    sys.exit(3)
print(r, seed, s["test_acc_ema"], s["test_acc"], round(sum(map(float, open(walls)))), sep="\t")' \
    "$dir/summary.json" "$home/wall_s" "$r" "$seed") || status=$?
  case $status in
    0) echo "$row" | tee -a "$OUT/results.tsv" ;;
    3) echo "$r seed $seed stopped; run the script again to resume it" >&2 ;;
    *) return "$status" ;;
  esac
}
export -f run_one

# The comparisons the issues ask for with 5 seeds; every other recipe (the cheaper IAM-D estimates included) gets 3.
seeds_of() { case $1 in fixmatch | fixmatch-iam | fixmatch-ggcr) echo "${FIXMATCH_SEEDS:-5}" ;; *) echo "${SEEDS:-3}" ;; esac; }
# Seed by seed, each recipe of a seed next to the others, so that a session that ends early leaves complete pairs.
todo=()
max=$(for r in $RECIPES; do seeds_of "$r"; done | sort -n | tail -n 1)
for ((seed = ${FIRST_SEED:-0}; seed < max; seed++)); do
  for r in $(printf '%s\n' $RECIPES | tac); do
    [ "$seed" -lt "$(seeds_of "$r")" ] || continue
    grep -q "^$r	$seed	" "$OUT/results.tsv" || todo+=("$r" "$seed")
  done
done
if [ ${#todo[@]} -gt 0 ]; then
  printf '%s\n' "${todo[@]}" | xargs -n 2 -P "$JOBS" bash -c 'set -euo pipefail; run_one "$@"' _
fi

python3 - "$OUT/results.tsv" $RECIPES <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| recipe | EMA test error (%) | raw test error (%) | wall s per run |")
print("|---|---|---|---|")
for name in sys.argv[2:]:
    r = [x for x in rows if x[0] == name]
    if not r:
        continue
    ema = [100 * (1 - float(x[2])) for x in r]; raw = [100 * (1 - float(x[3])) for x in r]
    sd = lambda v: st.stdev(v) if len(v) > 1 else 0.0
    print(f"| {name} ({len(r)} seeds) | {st.mean(ema):.2f} ± {sd(ema):.2f} | {st.mean(raw):.2f} ± {sd(raw):.2f} | {st.mean([float(x[4]) for x in r]):.0f} |")
# Paired by seed: the same seed draws the same labelled images for every recipe, so the split's own difficulty cancels.
pairs = [("fixmatch-iam", "fixmatch"), ("fixmatch-iam-ascent", "fixmatch-iam"), ("fixmatch-iam-ascent", "fixmatch"),
         ("fixmatch-iam-subbatch", "fixmatch-iam"), ("fixmatch-iam-subbatch", "fixmatch"), ("fixmatch-ggcr", "fixmatch"),
         ("supervised-iam", "supervised"), ("supervised-iam", "supervised-sam"),
         ("supervised-sam", "supervised")]
err = {(x[0], x[1]): 100 * (1 - float(x[2])) for x in rows}
print()
print("| A − B (EMA test error, points) | seeds | differences by seed | mean ± std | paired t (df) |")
print("|---|---|---|---|---|")
for a, b in pairs:
    if a not in sys.argv[2:] or b not in sys.argv[2:]:
        continue
    seeds = sorted({s for (r, s) in err if r == a} & {s for (r, s) in err if r == b}, key=int)
    d = [err[(a, s)] - err[(b, s)] for s in seeds]
    if len(d) < 2:
        continue
    m, sdv = st.mean(d), st.stdev(d)
    t = m / (sdv / len(d) ** 0.5) if sdv > 0 else float("inf")
    by_seed = ", ".join(f"{x:+.2f}" for x in d)
    print(f"| {a} − {b} | {len(d)} | {by_seed} | {m:+.2f} ± {sdv:.2f} | {t:+.2f} ({len(d) - 1}) |")
PY
