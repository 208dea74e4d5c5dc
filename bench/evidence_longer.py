#!/usr/bin/env python3
"""Gathers bench/evidence_longer.sh's finished runs and prints docs/evidence.md's tables for issue 32.

Usage: python3 bench/evidence_longer.py [OUT=runs/evidence-longer]

Each finished run becomes a row of bench/evidence_longer_results.tsv and a thinned copy of its metrics under
bench/evidence_longer/curves/<label>/metrics.jsonl (every evaluation row as logged, the per-step series as means over
windows of 50 steps), so the tables and `burnish plot` overlays can be redrawn after runs/ is gone. Rows already in
the results file are kept, so a comparison gathered over several sessions stays whole; a run found again replaces
its row. Then it prints the tables: the 6,000-step comparison (final and best-over-training EMA test error, paired
differences by seed with their t statistic), FixMatch's gain over supervised-only, and the beta x rho grid.
"""
import csv
import json
import re
import statistics as st
import sys
from pathlib import Path

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/evidence-longer")
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "evidence_longer_results.tsv"
CURVES = BENCH / "evidence_longer" / "curves"
V2 = BENCH / "evidence_fashion_mnist_v2_results.tsv"
COLUMNS = ["part", "recipe", "seed", "beta", "rho", "steps", "test_acc_ema", "best_acc_ema", "best_step", "test_acc",
           "mask_rate", "pseudo_acc_masked", "s_rho", "wall_s", "label"]
# The part of bench/evidence_longer.sh -> the recipe it trains.
RECIPES = {"grid": "fixmatch-iam-subbatch", "supervised-6000": "supervised", "fixmatch-6000": "fixmatch",
           "subbatch-6000": "fixmatch-iam-subbatch", "fixmatch-1500": "fixmatch"}
# The shipped recipe's IAM-D settings, for rows whose sweep did not vary them.
SHIPPED = {"beta": "1", "rho": "0.05"}
WINDOW = 50
# The per-step series that the figures and the "end of training" columns use.
PER_STEP = ["loss", "lr", "supervised/loss", "fixmatch/loss", "fixmatch/mask_rate", "fixmatch/pseudo_acc_masked",
            "iam-d/loss", "iam-d/s_rho"]
EVAL = ["test_acc", "test_acc_ema", "test_loss", "train_acc", "train_loss"]


def label(part, seed, beta, rho):
    if part == "grid":
        return f"grid-b{beta}-r{rho}"
    return f"{part}-s{seed}"


def thin(records):
    """Eval rows as logged; per-step series as window means, at each window's last step."""
    out, window = [], []
    for r in records:
        window.append(r)
        if any(k in r for k in EVAL) or len(window) == WINDOW:
            row = {"step": r["step"]}
            for k in PER_STEP:
                vals = [w[k] for w in window if isinstance(w.get(k), (int, float))]
                if vals:
                    row[k] = sum(vals) / len(vals)
            for k in EVAL:
                if k in r:
                    row[k] = r[k]
            out.append(row)
            window = []
    return out


def gather():
    rows = {}
    if RESULTS.exists():
        with open(RESULTS) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                rows[r["label"]] = r
    for folder in sorted(OUT.iterdir()) if OUT.exists() else []:
        # grid, <part> (a sweep over --seeds) or <part>-s<seed> (one seed).
        match = re.fullmatch(r"(grid|fixmatch-1500|supervised-6000|fixmatch-6000|subbatch-6000)(-s\d+)?", folder.name)
        if not match or not (folder / "sweep.csv").exists():
            continue
        part = match.group(1)
        recipe = RECIPES[part]
        with open(folder / "sweep.csv") as f:
            done = [r for r in csv.DictReader(f) if r["status"] == "done"]
        for s in done:
            runs = [d for d in (folder / s["run"]).iterdir() if (d / "summary.json").exists()]
            if len(runs) != 1:
                sys.exit(f"{folder / s['run']}: expected one finished run folder, found {len(runs)}")
            run = runs[0]
            summary = json.load(open(run / "summary.json"))
            records = [json.loads(l) for l in open(run / "metrics.jsonl") if l.strip()]
            evals = [r for r in records if "test_acc_ema" in r]
            best = max(evals, key=lambda r: (r["test_acc_ema"], -r["step"]))
            last = [r for r in records if r["step"] > summary["steps"] - 500]
            mean = lambda k: (f"{st.mean(r[k] for r in last if k in r):.4f}" if any(k in r for r in last) else "")
            seed = re.search(r"(?m)^seed = (\d+)$", open(run / "recipe.toml").read()).group(1)
            beta, rho = s.get("set:stage.2.beta", ""), s.get("set:stage.2.rho", "")
            if recipe == "fixmatch-iam-subbatch":
                beta, rho = beta or SHIPPED["beta"], rho or SHIPPED["rho"]
            name = label(part, seed, beta, rho)
            rows[name] = {"part": part, "recipe": recipe, "seed": seed, "beta": beta, "rho": rho,
                          "steps": str(summary["steps"]), "test_acc_ema": str(summary["test_acc_ema"]),
                          "best_acc_ema": str(best["test_acc_ema"]), "best_step": str(best["step"]),
                          "test_acc": str(summary["test_acc"]), "mask_rate": mean("fixmatch/mask_rate"),
                          "pseudo_acc_masked": mean("fixmatch/pseudo_acc_masked"), "s_rho": mean("iam-d/s_rho"),
                          "wall_s": str(round(float(s["wall_s"]))), "label": name}
            dest = CURVES / name
            dest.mkdir(parents=True, exist_ok=True)
            with open(dest / "metrics.jsonl", "w") as f:
                for r in thin(records):
                    f.write(json.dumps(r, sort_keys=True) + "\n")
    order = sorted(rows.values(), key=lambda r: (list(RECIPES).index(r["part"]), r["beta"], r["rho"], int(r["seed"])))
    with open(RESULTS, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(order)
    return order


def err(acc):
    return 100 * (1 - float(acc))


def pm(v):
    return f"{st.mean(v):.2f} ± {st.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


def paired(name, a, b):
    seeds = sorted(set(a) & set(b), key=int)
    if len(seeds) < 2:
        return
    d = [a[s] - b[s] for s in seeds]
    m, sd = st.mean(d), st.stdev(d)
    t = m / (sd / len(d) ** 0.5) if sd > 0 else float("inf")
    print(f"| {name} | {len(d)} | {', '.join(f'{x:+.2f}' for x in d)} | {m:+.2f} ± {sd:.2f} | {t:+.2f} ({len(d) - 1}) |")


def main():
    rows = gather()
    by = lambda part: {r["seed"]: r for r in rows if r["part"] == part}
    if any(r["steps"] == "6000" for r in rows):
        long_runs(by)
    grid_table(rows, by)


def long_runs(by):
    print("## 6,000 steps\n")
    print("| recipe | seeds | final EMA test error (%) | best EMA test error over training (%) | step of the best |"
          " raw test error (%) | mask rate, last 500 steps | masked pseudo-label acc. | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for part in ["supervised-6000", "fixmatch-6000", "subbatch-6000"]:
        r = list(by(part).values())
        if not r:
            continue
        f = lambda k: [err(x[k]) for x in r]
        num = lambda k: f"{st.mean(float(x[k]) for x in r):.3f}" if all(x[k] for x in r) else "–"
        print(f"| {r[0]['recipe']} | {len(r)} | {pm(f('test_acc_ema'))} | {pm(f('best_acc_ema'))} |"
              f" {', '.join(x['best_step'] for x in r)} | {pm(f('test_acc'))} | {num('mask_rate')} |"
              f" {num('pseudo_acc_masked')} | {st.mean(float(x['wall_s']) for x in r):.0f} |")
    print("\n| A − B (points of EMA test error) | seeds | differences by seed | mean ± std | paired t (df) |")
    print("|---|---|---|---|---|")
    for key, what in [("test_acc_ema", "final"), ("best_acc_ema", "best over training")]:
        e = lambda part: {s: err(r[key]) for s, r in by(part).items()}
        paired(f"subbatch − fixmatch, {what}", e("subbatch-6000"), e("fixmatch-6000"))
        paired(f"fixmatch − supervised, {what}", e("fixmatch-6000"), e("supervised-6000"))


def grid_table(rows, by):
    grid = [r for r in rows if r["part"] == "grid"]
    if grid:
        print("\n## β × ρ at 1,500 steps, seed 0\n")
        print("| run | β | ρ | final EMA test error (%) | best EMA test error (%) | raw test error (%) |"
              " Ŝ_ρ, last 500 steps | mask rate, last 500 steps | wall s |")
        print("|---|---|---|---|---|---|---|---|---|")
        base = by("fixmatch-1500").get("0")
        if base:
            print(f"| fixmatch | – | – | {err(base['test_acc_ema']):.2f} | {err(base['best_acc_ema']):.2f} |"
                  f" {err(base['test_acc']):.2f} | – | {float(base['mask_rate']):.3f} | {base['wall_s']} |")
        for r in sorted(grid, key=lambda r: (float(r["rho"]), float(r["beta"]))):
            print(f"| subbatch | {r['beta']} | {r['rho']} | {err(r['test_acc_ema']):.2f} | {err(r['best_acc_ema']):.2f} |"
                  f" {err(r['test_acc']):.2f} | {float(r['s_rho']):.2e} | {float(r['mask_rate']):.3f} | {r['wall_s']} |")
        if V2.exists():
            v2 = [l.split("\t") for l in open(V2) if l.strip()]
            for name in ["fixmatch", "fixmatch-iam-subbatch"]:
                errs = [err(x[2]) for x in v2 if x[0] == name]
                s0 = [err(x[2]) for x in v2 if x[0] == name and x[1] == "0"]
                if errs and s0:
                    print(f"\n{name} at 1,500 steps (bench/evidence_fashion_mnist_v2_results.tsv): seed 0 "
                          f"{s0[0]:.2f} % EMA error; over {len(errs)} seeds {pm(errs)}")


if __name__ == "__main__":
    main()
