#!/usr/bin/env bash
# Fashion-MNIST evidence of issue 32 (docs/evidence.md, "Longer FixMatch, and IAM-D's β and ρ"): does IAM-D help
# FixMatch when FixMatch trains longer, or when β and ρ are tuned? Every part is a resumable `burnish sweep` (run the
# script again to continue; a run resumes from its latest checkpoint, every 500 steps), two runs at a time with one
# thread each, into $OUT/<part>/. bench/evidence_longer.py then gathers the finished runs into
# bench/evidence_longer_results.tsv and prints the tables.
# Usage: PARTS="grid fixmatch-1500 supervised-6000 fixmatch-6000 subbatch-6000" bash bench/evidence_longer.sh
#   (OUT=runs/evidence-longer BURNISH=target/release/burnish JOBS=2 THREADS=1 SEEDS=3)
# Keep the build a part started with until it ends (copy it aside, e.g. BURNISH=/work/evidence-bin/burnish): a later
# build may write a different resolved recipe, which resuming refuses.
#   grid            fixmatch-iam-subbatch at the shipped 1,500 steps, seed 0, β ∈ {0.3, 1, 3} × ρ ∈ {0.02, 0.1}
#   fixmatch-1500   fixmatch as shipped (1,500 steps), seed 0: the grid's baseline, with its curves (the same run as
#                   bench/evidence_fashion_mnist_v2_results.tsv's seed 0, which evaluated only at the end)
#   supervised-6000 supervised-only at 6,000 steps, seeds 0 to SEEDS − 1 (FixMatch's gain over it at that budget)
#   fixmatch-6000   fixmatch at 6,000 steps, seeds 0 to SEEDS − 1
#   subbatch-6000   fixmatch-iam-subbatch at 6,000 steps, seeds 0 to SEEDS − 1
# Schedules (fixmatch-cosine over the run's steps), EMA (0.99), evaluation (every 500 steps) and the 250 labelled
# images of each seed are the shipped recipes'.
set -euo pipefail
B=${BURNISH:-target/release/burnish}
OUT=${OUT:-runs/evidence-longer}
R=recipes/fashion-mnist
common=(--jobs "${JOBS:-2}" --threads "${THREADS:-1}" --quiet)
for part in ${PARTS:-grid fixmatch-1500 supervised-6000 fixmatch-6000 subbatch-6000}; do
  case $part in
    grid) "$B" sweep "$R/fixmatch-iam-subbatch.toml" --grid stage.2.beta=0.3,1,3 --grid stage.2.rho=0.02,0.1 \
      "${common[@]}" --runs-dir "$OUT/grid" ;;
    fixmatch-1500) "$B" sweep "$R/fixmatch.toml" "${common[@]}" --runs-dir "$OUT/$part" ;;
    supervised-6000) "$B" sweep "$R/supervised.toml" --set schedule.steps=6000 --seeds "${SEEDS:-3}" \
      "${common[@]}" --runs-dir "$OUT/$part" ;;
    fixmatch-6000) "$B" sweep "$R/fixmatch.toml" --set schedule.steps=6000 --seeds "${SEEDS:-3}" \
      "${common[@]}" --runs-dir "$OUT/$part" ;;
    subbatch-6000) "$B" sweep "$R/fixmatch-iam-subbatch.toml" --set schedule.steps=6000 --seeds "${SEEDS:-3}" \
      "${common[@]}" --runs-dir "$OUT/$part" ;;
    *) echo "unknown part '$part' (grid, fixmatch-1500, supervised-6000, fixmatch-6000, subbatch-6000)" >&2; exit 2 ;;
  esac
done
