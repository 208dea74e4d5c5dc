#!/usr/bin/env bash
# The cost of IAM-D in FixMatch: step time of recipes/fashion-mnist/fixmatch-iam.toml over that of
# recipes/fashion-mnist/fixmatch.toml (B = 32, μ = 3), the two alternating over ROUNDS rounds so both see the same
# machine load, next to the floor the pass count sets (docs/iam.md, "Passes per step").
# Usage: bash bench/iam_cost.sh   (ROUNDS=5 STEPS=10 THREADS=<rayon default> BURNISH=target/release/burnish;
#        extra arguments go to every `burnish bench`; IAM_ARGS to the FixMatch + IAM-D one only, e.g.
#        IAM_ARGS="--set stage.2.ascent_fraction=0.25" bash bench/iam_cost.sh)
set -euo pipefail
b=${BURNISH:-target/release/burnish}
rounds=${ROUNDS:-5} steps=${STEPS:-10}
[ -n "${THREADS:-}" ] && export RAYON_NUM_THREADS=$THREADS
# The step time on one reused batch: the pipeline's own cost is the same for both recipes (they draw the same views).
ms() { "$b" bench "recipes/fashion-mnist/$1.toml" --steps "$steps" --warmup 2 "${@:2}" | grep -o 'step_ms_median=[0-9.]*' | tail -n 1 | cut -d= -f2; }
fm=() iam=()
for ((i = 1; i <= rounds; i++)); do
  fm+=("$(ms fixmatch "$@")")
  # shellcheck disable=SC2086
  iam+=("$(ms fixmatch-iam "$@" ${IAM_ARGS:-})")
  echo "round $i: fixmatch ${fm[-1]} ms, fixmatch-iam ${iam[-1]} ms" >&2
done
python3 - "${fm[*]}" "${iam[*]}" <<'PY'
import statistics as st, sys
fm = [float(x) for x in sys.argv[1].split()]
iam = [float(x) for x in sys.argv[2].split()]
ratio = [b / a for a, b in zip(fm, iam)]
B, mu = 32, 3
floor = 1 + 3 * (B + mu * B) / (B + 2 * mu * B)
print(f"fixmatch step_ms median={st.median(fm):.1f} (min {min(fm):.1f}, max {max(fm):.1f})")
print(f"fixmatch-iam step_ms median={st.median(iam):.1f} (min {min(iam):.1f}, max {max(iam):.1f})")
print(f"ratio median={st.median(ratio):.2f} (min {min(ratio):.2f}, max {max(ratio):.2f}) over {len(ratio)} rounds; "
      f"pass-count floor of the full estimate {floor:.2f}")
PY
