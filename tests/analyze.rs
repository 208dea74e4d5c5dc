//! `burnish analyze`: Kendall's τ-b, Spearman's ρ and the granulated τ against hand computations, the reading of a
//! sweep.csv (rows that are not done or lack a value are left out, bad cells are refused), and the command end to end.

use std::path::Path;
use std::process::Output;

use burnish::analyze::{granulated_tau, kendall_tau_b, spearman, Analysis, Sweep};

/// A hand-made sweep: optimizer.lr × stage.0.rho × seed, 2 × 2 × 2 runs that are done, then four rows that every
/// statistic must leave out: a failed run, a stopped one (with numbers that would change every τ), a done run
/// without Ŝ_ρ and with λ_max NaN, and a done run without a gap. sam_sharpness was never measured. λ_max spans
/// 1..500, so its plot has a logarithmic axis.
const SWEEP: &str = "\
run,status,error,set:optimizer.lr,set:stage.0.rho,set:seed,test_acc,test_acc_ema,test_loss,train_acc,train_loss,gap_acc,gap_loss,wall_s,s_rho,lambda_max,sam_sharpness
r0,done,,0.1,0.05,0,0.8,0.8,0.5,0.9,0.4,0.10,0.10,12.5,1.0,500,
r1,done,,0.01,0.05,0,0.8,0.8,0.5,0.9,0.4,0.20,0.20,12.5,2.0,500,
r2,done,,0.1,0.1,0,0.8,0.8,0.5,0.9,0.4,0.15,0.30,12.5,3.0,1,
r3,done,,0.01,0.1,0,0.8,0.8,0.5,0.9,0.4,0.30,0.40,12.5,4.0,2,
r4,done,,0.1,0.05,1,0.8,0.8,0.5,0.9,0.4,0.12,0.15,12.5,1.5,3,
r5,done,,0.01,0.05,1,0.8,0.8,0.5,0.9,0.4,0.11,0.25,12.5,2.5,1,
r6,done,,0.1,0.1,1,0.8,0.8,0.5,0.9,0.4,0.25,0.35,12.5,3.5,2,
r7,done,,0.01,0.1,1,0.8,0.8,0.5,0.9,0.4,0.35,0.45,12.5,4.5,2,
r8,failed,\"out of memory, at step 3\",0.1,0.05,2,,,,,,,,,,,
r9,stopped,,0.01,0.05,2,0.5,0.5,1.0,0.5,1.0,0.0,0.0,3.0,100,0.5,
r10,done,,0.1,0.1,2,0.8,0.8,0.5,0.9,0.4,0.5,0.5,12.0,,NaN,
r11,done,,0.01,0.1,2,,,,,,,,12.0,0.5,0.5,
";

/// Tab10's first two colours, which the scatter plots give lr = 0.01 and lr = 0.1 (numeric order).
const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];

fn close(got: Option<f64>, want: f64) {
    let got = got.expect("a defined statistic");
    assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
}

/// A tempdir holding `csv` as sweep.csv.
fn sweep_dir(csv: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("sweep.csv"), csv).expect("write sweep.csv");
    tmp
}

fn burnish(args: &[&str], cwd: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_burnish"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The full error chain of reading `csv` and analysing `measures` against `gap`.
fn analysis_error(csv: &str, measures: &[&str], gap: &str) -> String {
    let tmp = sweep_dir(csv);
    let result = Sweep::read(&tmp.path().join("sweep.csv")).and_then(|sweep| {
        let asked: Vec<String> = measures.iter().map(|m| m.to_string()).collect();
        Analysis::new(&sweep, &sweep.measures(&asked)?, gap)
    });
    format!("{:#}", result.expect_err("the analysis should fail"))
}

#[test]
fn kendall_tau_b_matches_hand_counts() {
    // Pairs of (1,2,3,4) against (1,3,2,4): only (2,3) is discordant, so τ = (5 − 1) / 6.
    close(kendall_tau_b(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]), 2.0 / 3.0);
    close(kendall_tau_b(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
    // x = (1,2,2,3), y = (1,3,2,2); pairs (i,j):
    //   (0,1) (0,2) (0,3): concordant; (1,2): tied in x; (1,3): x up, y down, discordant; (2,3): tied in y.
    //   n0 = 6, n1 = 1 (ties in x), n2 = 1 (ties in y): τ-b = (3 − 1) / √((6 − 1)(6 − 1)) = 2/5.
    //   τ-a would give 2/6 instead.
    close(kendall_tau_b(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 2.0]), 0.4);
    // A pair tied on both sides counts in both n1 and n2: (1,1,2) against itself is 2 / √((3 − 1)(3 − 1)) = 1.
    close(kendall_tau_b(&[1.0, 1.0, 2.0], &[1.0, 1.0, 2.0]), 1.0);
    // Undefined: all ties on one side, fewer than 2 pairs, NaN.
    assert_eq!(kendall_tau_b(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), None);
    assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]), None);
    assert_eq!(kendall_tau_b(&[1.0], &[1.0]), None);
    assert_eq!(kendall_tau_b(&[], &[]), None);
    assert_eq!(kendall_tau_b(&[1.0, f64::NAN], &[1.0, 2.0]), None);
}

#[test]
fn spearman_matches_hand_ranks() {
    // Ranks (1..5) against (2,1,4,3,5): d = (−1,1,−1,1,0), Σd² = 4, ρ = 1 − 6·4 / (5·24) = 0.8.
    close(spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]), 0.8);
    // Ties take the mean rank: x = (1,2,2,3) → (1, 2.5, 2.5, 4), y = (1,3,2,2) → (1, 4, 2.5, 2.5). Centred:
    // (−1.5,0,0,1.5) and (−1.5,1.5,0,0): Σ products = 2.25, Σ squares = 4.5 each, ρ = 2.25 / 4.5 = 0.5.
    close(spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 2.0]), 0.5);
    // Only the order counts.
    close(spearman(&[1.0, 10.0, 1000.0], &[0.1, 0.2, 0.3]), 1.0);
    assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    assert_eq!(spearman(&[1.0], &[2.0]), None);
}

#[test]
fn granulated_tau_averages_over_groups_that_differ_in_one_key() {
    let settings = |rows: &[[&str; 2]]| rows.iter().map(|r| r.map(str::to_string).to_vec()).collect::<Vec<_>>();
    // Key 0 takes a, b, c; key 1 is the seed. Seed 0: x rises with the gap (τ = 1); seed 1: (1,2,3) against
    // (3,1,2) has 1 concordant pair, 2 discordant, τ = −1/3; seed 2 has one run only (no group).
    let s = settings(&[["a", "0"], ["b", "0"], ["c", "0"], ["a", "1"], ["b", "1"], ["c", "1"], ["a", "2"]]);
    let x = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 9.0];
    let y = [1.0, 2.0, 3.0, 3.0, 1.0, 2.0, 0.0];
    let (psi, groups) = granulated_tau(&x, &y, &s, 0);
    close(psi, (1.0 - 1.0 / 3.0) / 2.0);
    assert_eq!(groups, 2);
    // Grouped by key 0 instead, runs differ only in the seed: a: (1,1,9) against (1,3,0) is tied in x for
    // (0,1), discordant for (0,2) and (1,2): τ-b = −2 / √((3−1)·3) = −2/√6; b: (2,2) tied, skipped; c: likewise.
    let (psi, groups) = granulated_tau(&x, &y, &s, 1);
    close(psi, -2.0 / 6f64.sqrt());
    assert_eq!(groups, 1);
    // No group has two runs.
    assert_eq!(granulated_tau(&[1.0, 2.0], &[1.0, 2.0], &settings(&[["a", "0"], ["b", "1"]]), 0), (None, 0));
}

#[test]
fn a_sweep_file_gives_hand_computed_statistics() {
    let tmp = sweep_dir(SWEEP);
    let sweep = Sweep::read(&tmp.path().join("sweep.csv")).expect("reads");
    assert_eq!(sweep.params, ["optimizer.lr", "stage.0.rho", "seed"]);
    assert_eq!(sweep.runs.len(), 12);
    assert_eq!(sweep.runs[8].status, "failed");
    let measures = sweep.measures(&[]).expect("default measures");
    assert_eq!(measures, ["s_rho", "lambda_max", "sam_sharpness"]);
    let a = Analysis::new(&sweep, &measures, "gap_acc").expect("analyses");
    assert_eq!((a.runs, a.done), (12, 10));
    // The seed gets no ψ of its own.
    assert_eq!(a.hyper_params, ["optimizer.lr", "stage.0.rho"]);

    // Ŝ_ρ over r0..r7 (r8..r11 left out). Sorted by Ŝ_ρ the gaps read .10 .12 .20 .11 .15 .25 .30 .35: 3
    // inversions (.12 > .11, .20 > .11, .20 > .15) among 28 pairs, no ties: τ = (25 − 3) / 28 = 11/14.
    // Gap ranks in that order: 1 3 5 2 4 6 7 8; d = 0 −1 −2 2 1 0 0 0, Σd² = 10: ρ = 1 − 6·10 / (8·63) = 37/42.
    let s = &a.measures[0];
    assert_eq!(s.n, 8);
    assert_eq!(
        s.points.iter().map(|p| p.run.as_str()).collect::<Vec<_>>(),
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    );
    close(s.kendall_tau, 11.0 / 14.0);
    close(s.spearman, 37.0 / 42.0);
    // ψ_lr: groups (rho, seed) of two runs each; (0.05,0), (0.1,0), (0.1,1) concordant, (0.05,1) (r4 1.5/.12
    // against r5 2.5/.11) discordant: (1 + 1 − 1 + 1) / 4. ψ_rho: all four (lr, seed) groups concordant.
    assert_eq!((s.granulated[0].param.as_str(), s.granulated[0].groups), ("optimizer.lr", 4));
    close(s.granulated[0].psi, 0.5);
    assert_eq!(s.granulated[1].groups, 4);
    close(s.granulated[1].psi, 1.0);
    close(s.psi, 0.75);

    // λ_max: ties at 500 (r0, r1), 1 (r2, r5) and 2 (r3, r6, r7): n1 = 1 + 1 + 3 = 5, n2 = 0. Across tie groups
    // 10 pairs are concordant and 13 discordant: τ-b = −3 / √(23 · 28).
    let l = &a.measures[1];
    assert_eq!(l.n, 8);
    close(l.kendall_tau, -3.0 / (23.0f64 * 28.0).sqrt());
    // ψ_lr: (0.05,0) is r0/r1, tied at 500, and (0.1,1) is r6/r7, tied at 2: both skipped; (0.1,0) r2 1/.15
    // against r3 2/.30 and (0.05,1) r4 3/.12 against r5 1/.11 are concordant: ψ = 1 over 2 groups.
    // ψ_rho: (0.1,0) 500/.10 against 1/.15, (0.01,0) 500/.20 against 2/.30, (0.1,1) 3/.12 against 2/.25
    // discordant, (0.01,1) 1/.11 against 2/.35 concordant: (−3 + 1) / 4. Ψ = (1 − 0.5) / 2.
    assert_eq!(l.granulated[0].groups, 2);
    close(l.granulated[0].psi, 1.0);
    assert_eq!(l.granulated[1].groups, 4);
    close(l.granulated[1].psi, -0.5);
    close(l.psi, 0.25);

    // Never measured: no runs, nothing defined.
    let n = &a.measures[2];
    assert_eq!((n.n, n.kendall_tau, n.spearman, n.psi), (0, None, None, None));
    assert_eq!(n.granulated.iter().map(|g| (g.psi, g.groups)).collect::<Vec<_>>(), [(None, 0), (None, 0)]);

    // Another gap: gap_loss rises with Ŝ_ρ run for run.
    let by_loss = Analysis::new(&sweep, &["s_rho".to_string()], "gap_loss").expect("analyses");
    close(by_loss.measures[0].kendall_tau, 1.0);
    close(by_loss.measures[0].psi, 1.0);
}

#[test]
fn bad_sweeps_fail_naming_the_file_and_the_column() {
    let missing = analysis_error(SWEEP, &["s_rho", "nope"], "gap_acc");
    assert!(missing.contains("`nope`") && missing.contains("sweep.csv"), "{missing}");
    let gap = analysis_error(SWEEP, &[], "gap_nope");
    assert!(gap.contains("`gap_nope`") && gap.contains("sweep.csv"), "{gap}");
    // A hyper-parameter column is not a number to correlate.
    let set = analysis_error(SWEEP, &["set:seed"], "gap_acc");
    assert!(set.contains("`set:seed`"), "{set}");

    let bad_cell = SWEEP.replace(
        "r3,done,,0.01,0.1,0,0.8,0.8,0.5,0.9,0.4,0.30,0.40,12.5,4.0",
        "r3,done,,0.01,0.1,0,0.8,0.8,0.5,0.9,0.4,0.30,0.40,12.5,four",
    );
    let bad = analysis_error(&bad_cell, &[], "gap_acc");
    assert!(bad.contains("run `r3`") && bad.contains("column `s_rho`") && bad.contains("`four`"), "{bad}");
    assert!(bad.contains("sweep.csv"), "{bad}");

    let none_done: String = SWEEP.replace(",done,", ",failed,");
    let none = analysis_error(&none_done, &[], "gap_acc");
    assert!(none.contains("no run has status `done`") && none.contains("sweep.csv"), "{none}");

    let no_measure = analysis_error("run,status,error,set:seed,gap_acc,s_rho_x\nr0,done,,0,0.1,1\n", &[], "gap_acc");
    assert!(no_measure.contains("--measures") && no_measure.contains("s_rho_x"), "{no_measure}");

    let tmp = tempfile::tempdir().expect("temp dir");
    let err = format!("{:#}", Sweep::read(&tmp.path().join("sweep.csv")).expect_err("no file"));
    assert!(err.contains("cannot read") && err.contains("sweep.csv"), "{err}");
}

#[test]
fn the_command_writes_the_table_json_and_plots() {
    let tmp = sweep_dir(SWEEP);
    let dir = tmp.path();
    let out = burnish(&["analyze", "."], dir);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let table = std::fs::read_to_string(dir.join("analysis/table.md")).expect("table.md");
    assert_eq!(stdout, table, "stdout is the table, the file messages go to stderr");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(
        rows,
        [
            "| measure | n | Kendall τ | Spearman ρ | ψ optimizer.lr | ψ stage.0.rho | Ψ |",
            "|---|--:|--:|--:|--:|--:|--:|",
            "| s_rho | 8 | 0.786 | 0.881 | 0.500 (4) | 1.000 (4) | 0.750 |",
            "| lambda_max | 8 | -0.118 | -0.148 | 1.000 (2) | -0.500 (4) | 0.250 |",
            "| sam_sharpness | 0 | n/a | n/a | n/a (0) | n/a (0) | n/a |",
        ]
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("analysis/analysis.json")).expect("json"))
            .expect("parses");
    assert_eq!(json["gap"], "gap_acc");
    assert_eq!(json["done"], 10);
    let s_rho = &json["measures"][0];
    assert_eq!(s_rho["measure"], "s_rho");
    assert_eq!(s_rho["kendall_tau"].as_f64(), Some(11.0 / 14.0));
    assert_eq!(s_rho["granulated"][0]["groups"], 4);
    assert_eq!(s_rho["points"][4]["run"], "r4");
    assert_eq!(s_rho["points"][4]["measure"].as_f64(), Some(1.5));
    assert!(json["measures"][2]["kendall_tau"].is_null());

    // One plot per measure with points (sam_sharpness has none): λ_max's on a log axis, Ŝ_ρ's linear.
    for measure in ["s_rho", "lambda_max"] {
        let png = image::open(dir.join(format!("analysis/{measure}.png"))).expect("decodes").to_rgb8();
        assert_eq!(png.dimensions(), (960, 540));
        let count = |c: [u8; 3]| png.pixels().filter(|p| p.0 == c).count();
        // Four runs per lr value and the legend's marker: five filled circles of radius 5, 81 pixels each, so no
        // point is missing, hidden under the legend or drawn over another.
        for (name, colour) in [("lr = 0.01", BLUE), ("lr = 0.1", ORANGE)] {
            assert_eq!(count(colour), 5 * 81, "{measure}.png: pixels of {name}");
        }
    }
    assert!(!dir.join("analysis/sam_sharpness.png").exists());
    assert!(text(&out).contains("no plot for sam_sharpness"), "{}", text(&out));

    // --out, --measures and --gap.
    let out = burnish(&["analyze", ".", "--out", "elsewhere", "--measures", "s_rho", "--gap", "gap_loss"], dir);
    assert!(out.status.success(), "{}", text(&out));
    let table = std::fs::read_to_string(dir.join("elsewhere/table.md")).expect("table.md");
    assert!(table.contains("| s_rho | 8 | 1.000 | 1.000 | 1.000 (4) | 1.000 (4) | 1.000 |"), "{table}");
    assert!(dir.join("elsewhere/s_rho.png").exists() && !dir.join("elsewhere/lambda_max.png").exists());

    // Errors exit 1 with the message.
    let out = burnish(&["analyze", ".", "--measures", "nope"], dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("`nope`") && text(&out).contains("sweep.csv"), "{}", text(&out));
    let empty = tempfile::tempdir().expect("temp dir");
    let out = burnish(&["analyze", "."], empty.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("sweep.csv"), "{}", text(&out));
}
