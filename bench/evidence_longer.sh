#!/usr/bin/env bash
# Fashion-MNIST evidence of issue 32 (docs/evidence.md, "IAM-D's β and ρ on FixMatch"): does IAM-D help FixMatch
# when FixMatch trains longer, or when β and ρ are tuned? Every run is a resumable `burnish sweep` with one thread
# (run the script again to continue; a run resumes from its latest checkpoint, every 500 steps), JOBS at a time, into
# $OUT/<label>/. A run whose row is already in bench/evidence_longer_results.tsv is skipped, so the comparison can be
# gathered over several sessions even when runs/ does not survive; bench/evidence_longer.py then gathers the
# finished runs into that file and prints the tables.
# Usage: PARTS="grid fixmatch-1500 supervised-6000 fixmatch-6000 subbatch-6000" bash bench/evidence_longer.sh
#   (OUT=runs/evidence-longer BURNISH=target/release/burnish JOBS=2 THREADS=1 SEEDS=3)
# Keep the build a run started with until it ends (copy it aside, e.g. BURNISH=/work/evidence-bin/burnish): a later
# build may write a different resolved recipe, which resuming refuses.
#   grid            fixmatch-iam-subbatch at the shipped 1,500 steps, seed 0, β ∈ {0.3, 1, 3} × ρ ∈ {0.02, 0.1}
#                   (one sweep with both axes, JOBS runs at a time)
#   fixmatch-1500   fixmatch as shipped (1,500 steps), seed 0: the grid's baseline on the grid's host and build, with
#                   its curves (bench/evidence_fashion_mnist_v2_results.tsv's seed 0 ran on another instruction set)
#   supervised-6000 supervised-only at 6,000 steps, seeds 0 to SEEDS − 1 (FixMatch's gain over it at that budget)
#   fixmatch-6000   fixmatch at 6,000 steps, seeds 0 to SEEDS − 1
#   subbatch-6000   fixmatch-iam-subbatch at 6,000 steps, seeds 0 to SEEDS − 1
# Schedules (fixmatch-cosine over the run's steps), EMA (0.99), evaluation (every 500 steps) and the 250 labelled
# images of each seed are the shipped recipes'.
set -euo pipefail
export B=${BURNISH:-target/release/burnish} OUT=${OUT:-runs/evidence-longer} THREADS=${THREADS:-1} R=recipes/fashion-mnist
# Relative to the repository root (like R), so that a copy of this script set aside for a long run reads the
# committed rows too.
RESULTS=${RESULTS:-bench/evidence_longer_results.tsv}
JOBS=${JOBS:-2}
mkdir -p "$OUT"

run_one() {
  local part=$1 seed=$2 recipe
  local -a set=(--set "seed=$seed")
  case $part in
    fixmatch-1500) recipe=fixmatch ;;
    supervised-6000) recipe=supervised ;;
    fixmatch-6000) recipe=fixmatch ;;
    subbatch-6000) recipe=fixmatch-iam-subbatch ;;
  esac
  [[ $part == *-6000 ]] && set+=(--set schedule.steps=6000)
  "$B" sweep "$R/$recipe.toml" "${set[@]}" --jobs 1 --threads "$THREADS" --quiet \
    --runs-dir "$OUT/$part-s$seed"
}
export -f run_one

todo=()
parts=" ${PARTS:-grid fixmatch-1500 supervised-6000 fixmatch-6000 subbatch-6000} "
for part in $parts; do
  case $part in
    grid) "$B" sweep "$R/fixmatch-iam-subbatch.toml" --grid stage.2.beta=0.3,1,3 --grid stage.2.rho=0.02,0.1 \
      --jobs "$JOBS" --threads "$THREADS" --quiet --runs-dir "$OUT/grid" ;;
    fixmatch-1500 | supervised-6000 | fixmatch-6000 | subbatch-6000) ;;
    *) echo "unknown part '$part' (grid, fixmatch-1500, supervised-6000, fixmatch-6000, subbatch-6000)" >&2; exit 2 ;;
  esac
done
# Seed by seed, so that a session that ends early leaves whole pairs, and within a seed the most expensive first, so
# that the JOBS lanes end close together.
for ((seed = 0; seed < ${SEEDS:-3}; seed++)); do
  for part in subbatch-6000 fixmatch-6000 supervised-6000 fixmatch-1500; do
    [[ $parts == *" $part "* ]] || continue
    [ "$part" = fixmatch-1500 ] && [ "$seed" -gt 0 ] && continue
    grep -q "	$part-s$seed\$" "$RESULTS" 2>/dev/null || todo+=("$part" "$seed")
  done
done
if [ ${#todo[@]} -gt 0 ]; then
  printf '%s %s\n' "${todo[@]}" | xargs -L 1 -P "$JOBS" bash -c 'set -euo pipefail; run_one "$@"' _
fi
