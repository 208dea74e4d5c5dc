#!/usr/bin/env bash
# The generalisation-gap study (docs/evidence.md, "Does Ŝ_ρ predict the generalisation gap?"): supervised cnn-small
# on 500 labelled Fashion-MNIST images (recipes/study/gap.toml), a grid over learning rate, batch size, weight decay and
# augmentation (none or the weak flip-and-shift view), each run trained until it fits (99 % training accuracy) and
# measured on 256 of its 2,000 held-out images (Ŝ_ρ and SAM sharpness both at ρ = 0.05); then Kendall τ and the
# granulated τ of Ŝ_ρ, λ_max and SAM sharpness against the gap. Resumable: run it again to continue. The figures
# in docs/evidence.md come from `bench/study_gap/` (the sweep's sweep.csv and its analysis).
# Usage: bash bench/study_gap.sh   (BURNISH=target/release/burnish OUT=runs/study-gap-fit JOBS=1 THREADS=1)
set -euo pipefail
B=${BURNISH:-target/release/burnish}
OUT=${OUT:-runs/study-gap-fit}
JOBS=${JOBS:-1}
"$B" --threads "$(( ${THREADS:-1} * JOBS ))" sweep recipes/study/gap.toml --runs-dir "$OUT" --jobs "$JOBS" \
  --grid optimizer.lr=0.01,0.1 --grid data.batch_size=32,128 --grid optimizer.weight_decay=0,0.0005 \
  --grid stage.0.view=none,weak \
  --measures s_rho,lambda_max,sam --measure-split holdout --measure-batch 256 --measure-rho 0.05 --quiet
"$B" analyze "$OUT"
mkdir -p bench/study_gap
cp "$OUT/sweep.csv" bench/study_gap/
cp "$OUT"/analysis/* bench/study_gap/
