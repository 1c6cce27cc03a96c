//! The drift statistics against scipy's on the same samples (`tests/fixtures/drift/oracle.json`,
//! written by `scripts/gen_drift_oracle.py`).

use ferroserve_core::profile::{
    ColumnKind, ColumnProfile, bin_shares, chi_square, ks_pvalue, ks_two_sample, psi,
};
use serde_json::Value;

fn oracle() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/drift/oracle.json"
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1e-3),
        "{what}: ours {a}, scipy's {b}"
    );
}

#[test]
fn psi_and_ks_match_scipy_on_the_same_samples() {
    let oracle = oracle();
    let reference = floats(&oracle["reference"]);
    for case in oracle["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let reference: Vec<f64> = if case["rounded_reference"].as_bool().unwrap() {
            // numpy rounds half to even, as Rust's round_ties_even.
            reference
                .iter()
                .map(|v| (v * 10.0).round_ties_even() / 10.0)
                .collect()
        } else {
            reference.clone()
        };
        let live = floats(&case["live"]);
        let profile = ColumnProfile::numeric("x", "input", 0, &reference, false);
        let ColumnKind::Numeric {
            edges,
            shares,
            sample,
            ..
        } = &profile.kind
        else {
            panic!("{name}: not numeric")
        };
        for (ours, theirs) in edges.iter().zip(floats(&case["edges"])) {
            close(*ours, theirs, &format!("{name}: edge"));
        }
        assert_eq!(edges.len(), case["edges"].as_array().unwrap().len());
        close(
            psi(shares, &bin_shares(edges, &live)),
            case["psi"].as_f64().unwrap(),
            &format!("{name}: PSI"),
        );
        assert_eq!(sample.len(), reference.len(), "1,000 values are all kept");
        let mut sorted = live.clone();
        sorted.sort_by(f64::total_cmp);
        let d = ks_two_sample(sample, &sorted);
        close(
            d,
            case["ks_statistic"].as_f64().unwrap(),
            &format!("{name}: KS"),
        );
        close(
            ks_pvalue(d, sample.len(), sorted.len()),
            case["ks_pvalue"].as_f64().unwrap(),
            &format!("{name}: KS p-value"),
        );
    }
}

#[test]
fn chi_square_matches_scipy() {
    let oracle = oracle();
    let chi = &oracle["chi_square"];
    close(
        chi_square(&floats(&chi["expected"]), &floats(&chi["observed"])),
        chi["statistic"].as_f64().unwrap(),
        "chi-square",
    );
}
