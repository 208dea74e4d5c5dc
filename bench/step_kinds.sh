#!/usr/bin/env bash
# The step kinds bench/compare_pytorch.sh and bench/profile_steps.sh measure: for each (model, kind), the burnish
# recipe and overrides (burnish_args) and bench/torch_step.py's arguments (torch_args) of the same step.
burnish_args() { # model kind
  local model=$1 kind=$2
  case $model/$kind in
    cnn-small/plain) echo "recipes/bench/cnn-small.toml" ;;
    cnn-small/sam) echo "recipes/bench/cnn-small.toml --set update.rule=sam" ;;
    cnn-small/iam-d) echo "recipes/bench/cnn-small-iam-d.toml" ;;
    cnn-small/fixmatch) echo "recipes/bench/fixmatch-cnn-small.toml" ;;
    cnn-small/fixmatch-iam-d) echo "recipes/bench/fixmatch-iam-d-cnn-small.toml" ;;
    wrn-28-2/plain) echo "recipes/bench/wrn-28-2.toml" ;;
    wrn-28-2/sam) echo "recipes/bench/wrn-28-2.toml --set update.rule=sam" ;;
    wrn-28-2/iam-d) echo "recipes/bench/wrn-28-2-iam-d.toml" ;;
    # FixMatch on wrn-28-2: the cnn-small FixMatch recipes (Fashion-MNIST, B 32, μ 7) with the model swapped.
    wrn-28-2/fixmatch) echo "recipes/bench/fixmatch-cnn-small.toml --set model.arch=wrn-28-2" ;;
    wrn-28-2/fixmatch-iam-d) echo "recipes/bench/fixmatch-iam-d-cnn-small.toml --set model.arch=wrn-28-2" ;;
  esac
}
torch_args() { # model kind
  local model=$1 kind=$2
  case $model/$kind in
    cnn-small/fixmatch* | wrn-28-2/fixmatch*) echo "--model $model --kind $kind --batch 32 --mu 7 --channels 1 --size 28" ;;
    cnn-small/*) echo "--model cnn-small --kind $kind --batch 128 --channels 1 --size 28" ;;
    wrn-28-2/*) echo "--model wrn-28-2 --kind $kind --batch 64 --channels 3 --size 32" ;;
  esac
}
