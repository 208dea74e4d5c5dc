#!/usr/bin/env bash
# Step-time figures for docs/benchmarks.md: burnish bench on each shipped benchmark recipe and update rule, then the
# PyTorch eager reference (bench/torch_step.py) for the plain steps. Run from the repository root:
#   bash bench/step_benchmarks.sh [--features ndarray] > bench.txt
# PYTHON points at a Python with torch installed (default: python3). BURNISH names a burnish binary to use instead
# of building one, e.g. a stripped `--features cuda` build carried to a GPU machine that has no Rust toolchain:
#   here:  cargo build --release --features cuda --target-dir target/cuda && mkdir -p .gpu &&
#          strip -o .gpu/burnish target/cuda/release/burnish && gzip -f .gpu/burnish &&
#          cp -r /usr/share/datasets/fashion-mnist .gpu/            (.gpu/ is git-ignored; ~41 MB in all)
#   there: gunzip -f .gpu/burnish.gz && BURNISH=.gpu/burnish BURNISH_DATA=.gpu bash bench/step_benchmarks.sh
set -euo pipefail
features=("$@")
if [ -n "${BURNISH:-}" ]; then
    b=$BURNISH
else
    cargo build --release "${features[@]}" --bin burnish >&2
    b=target/release/burnish
fi
steps=${STEPS:-10}
run() { # label, recipe, extra args...
    local label=$1 recipe=$2
    shift 2
    local out
    out=$($b bench "$recipe" --steps "$steps" --warmup 1 "$@")
    echo "$label $(echo "$out" | grep -o 'with_pipeline_step_ms_median=[0-9.]*') $(echo "$out" | tail -n 1)"
}
for model in cnn-small wrn-28-2; do
    for rule in plain sam asam iam-s; do
        run "$model/$rule" "recipes/bench/$model.toml" --set "update.rule=$rule"
    done
    run "$model/iam-d" "recipes/bench/$model-iam-d.toml"
done
run "fixmatch/cnn-small" recipes/bench/fixmatch-cnn-small.toml
run "fixmatch+iam-d/cnn-small" recipes/bench/fixmatch-iam-d-cnn-small.toml
py=${PYTHON:-python3}
if $py -c 'import torch' 2>/dev/null; then
    echo "pytorch/cnn-small $($py bench/torch_step.py --model cnn-small --batch 128 --channels 1 --size 28 --threads 2 --steps "$steps" | tail -n 1)"
    echo "pytorch/wrn-28-2 $($py bench/torch_step.py --model wrn-28-2 --batch 64 --channels 3 --size 32 --threads 2 --steps "$steps" | tail -n 1)"
fi
