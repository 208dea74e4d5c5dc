#!/usr/bin/env bash
# The GPU check: the backend test subset (tests/backend.rs) and step benchmarks on a GPU build, from binaries built
# beforehand, so that it runs on a machine that reaches no package registry (docs/benchmarks.md, "GPU check").
#
#   bash bench/gpu_check.sh build cuda          # here: release binaries of the cuda build into bench/gpu_check/cuda/
#   bash bench/gpu_check.sh run cuda            # on the GPU machine, from the repository root (the carried folder)
#   bash bench/gpu_check.sh build wgpu          # the same for Burn's wgpu backend (Vulkan)
#   bash bench/gpu_check.sh run wgpu --small    # on Mesa's software Vulkan: one small step of each, to see it work
#
# `run` prints, per benchmark and N (1, and 2 peers on the one device): the median step time on a reused batch, images
# per second, the data pipeline's wait share (1 - reused step / step with the pipeline), the peak resident memory and,
# where nvidia-smi exists, the peak GPU memory in use while it ran.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: bench/gpu_check.sh build|run cuda|wgpu [--small]}
feature=${2:?usage: bench/gpu_check.sh build|run cuda|wgpu [--small]}
small=${3:-}
out="bench/gpu_check/$feature"

if [[ $mode == build ]]; then
    mkdir -p "$out"
    cargo build --release --features "$feature" --bin burnish
    cp target/release/burnish "$out/burnish"
    # The test subset as a release test binary; cargo prints where it put it.
    exe=$(cargo test --release --features "$feature" --test backend --no-run --message-format=json \
        | grep -o '"executable":"[^"]*/deps/backend-[^"]*"' | cut -d'"' -f4)
    cp "$exe" "$out/backend-tests"
    strip "$out/burnish" "$out/backend-tests" 2>/dev/null || true
    ls -l "$out"
    exit 0
fi
[[ $mode == run ]] || { echo "mode must be build or run" >&2; exit 2; }
[[ -x $out/burnish && -x $out/backend-tests ]] || { echo "no binaries in $out: run 'bench/gpu_check.sh build $feature' first" >&2; exit 2; }

echo "== host"
date -u +%Y-%m-%dT%H:%MZ
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
grep -m1 'model name' /proc/cpuinfo || true

echo "== the backend test subset ($feature)"
# The tests read the shipped recipes from the repository (CARGO_MANIFEST_DIR was this checkout's path when built).
"$out/backend-tests" --test-threads 1

echo "== end to end: SimCLR + IAM-D on two peers, resumed on one, then measure and probe ($feature)"
# Synthetic images, so that it needs no dataset on the GPU machine; checks the commands, not accuracy. IAM-D's
# distribution is per image ("components"), as --devices requires (docs/devices.md).
runs=$(mktemp -d)
e2e=(--set 'data.dataset="synthetic"' --set data.synthetic_train_size=96 --set data.synthetic_test_size=32
     --set data.labels_per_class=4 --set data.batch_size=16 --set model.projection.hidden=64
     --set model.projection.dim=32 --set 'stage.1.distribution="components"' --set schedule.warmup=0 --set checkpoint.every=2 --set eval.probe_every=0
     --runs-dir "$runs")
"$out/burnish" train recipes/fashion-mnist/simclr-iam.toml "${e2e[@]}" --set schedule.steps=4 --stop-after 2 \
    --devices 2 --quiet
run=$(ls -d "$runs"/*/ | head -1)
"$out/burnish" train recipes/fashion-mnist/simclr-iam.toml "${e2e[@]}" --set schedule.steps=4 --resume "$run" --quiet
ckpt=$(ls "$run"checkpoints/* | sort | tail -1)
"$out/burnish" measure "$ckpt" --restarts 2 --measures s_rho,lambda_max,sam | grep -E '^(lambda_max|sam_sharpness|s_rho_mean)='
"$out/burnish" probe "$ckpt" --epochs 2 | tail -1
rm -rf "$runs"

# Benchmarks: (label, recipe, overrides). Steps and warm-up are small with --small (software Vulkan is ~100x slower).
if [[ $small == --small ]]; then
    steps=1; warmup=1; fixmatch_shape="B2 mu1"
    shrink=(--set data.batch_size=4 --set data.synthetic_train_size=64 --set data.synthetic_test_size=8)
    fixmatch_shrink=(--set data.batch_size=2 --set data.mu=1 --set data.labels_per_class=2
                     --set data.synthetic_train_size=64 --set data.synthetic_test_size=8)
else
    steps=10; warmup=3; fixmatch_shape="B64 mu7"
    shrink=(); fixmatch_shrink=()
fi
fixmatch=(--set 'data.dataset="synthetic"' --set data.labels_per_class=25 --set data.synthetic_train_size=4000)

bench() {
    local label=$1; shift
    for n in 1 2; do
        local gpu_peak=n/a sampler=
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/gpu_check_mem.txt &
            sampler=$!
        fi
        local text
        text=$("$out/burnish" bench "$@" --steps "$steps" --warmup "$warmup" --devices "$n")
        if [[ -n $sampler ]]; then
            kill "$sampler" 2>/dev/null || true
            gpu_peak="$(sort -n /tmp/gpu_check_mem.txt | tail -1) MiB"
        fi
        local images with reused rss collective
        images=$(grep -o 'images_per_step=[0-9]*' <<<"$text" | cut -d= -f2)
        with=$(grep -o 'with_pipeline_step_ms_median=[0-9.]*' <<<"$text" | cut -d= -f2)
        reused=$(grep -o '^step_ms_median=[0-9.]*' <<<"$text" | cut -d= -f2)
        rss=$(grep -o 'peak_rss_mib=[0-9a-z]*' <<<"$text" | cut -d= -f2)
        collective=$(grep -o 'collective_share=[0-9.]*' <<<"$text" | cut -d= -f2 || true)
        awk -v l="$label" -v n="$n" -v i="$images" -v w="$with" -v r="$reused" -v rss="$rss" -v g="$gpu_peak" \
            -v c="${collective:--}" 'BEGIN {
                printf "%-28s N=%d step_ms=%8.1f images_per_s=%8.1f data_wait_share=%.3f peak_rss_mib=%s peak_gpu=%s collective_share=%s\n",
                    l, n, r, i * 1000 / r, (w > r ? 1 - r / w : 0), rss, g, c }'
    done
}

echo "== step benchmarks ($feature, steps=$steps, warm-up=$warmup)"
bench "wrn-28-2 plain" recipes/bench/wrn-28-2.toml "${shrink[@]}"
bench "wrn-28-2 sam" recipes/bench/wrn-28-2.toml --set 'update.rule="sam"' --set update.rho=0.05 "${shrink[@]}"
bench "wrn-28-2 iam-d" recipes/bench/wrn-28-2-iam-d.toml "${shrink[@]}"
bench "fixmatch-iam-d ($fixmatch_shape)" recipes/cifar10/fixmatch-iam-250.toml "${fixmatch[@]}" "${fixmatch_shrink[@]}"
