//! Reference profiles of a model's data and the drift statistics that compare live traffic
//! with them. A [`Profile`] is written by `ferroserve profile` from a training sample (one
//! [`ColumnProfile`] per input feature and per output column) and read by the server, which
//! keeps a window of live values per column and scores it against the reference:
//!
//! - numeric columns: the population stability index over the reference's decile bins
//!   ([`psi`]), and the two-sample Kolmogorov–Smirnov statistic against the reference sample
//!   ([`ks_two_sample`], with the p-value of Kolmogorov's limiting distribution, [`ks_pvalue`]);
//! - categorical columns (strings, or integers with few distinct values): PSI over the
//!   categories and Pearson's chi-square statistic ([`chi_square`]).
//!
//! Pure functions over slices: no I/O, so the same code scores drift in the server, in batch
//! jobs and in the browser build. `scripts/gen_drift_oracle.py` checks them against scipy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The profile file's name, next to a model (`<model>/profile.json`) or a version.
pub const PROFILE_FILE: &str = "profile.json";

/// The smallest share a bin is given in [`psi`], so an empty bin scores finitely (the usual
/// convention; without it one empty bin makes the index infinite).
pub const PSI_FLOOR: f64 = 1e-4;

/// Most reference values kept per numeric column for the KS test.
pub const REFERENCE_SAMPLE: usize = 1_000;

/// Integer columns with at most this many distinct values are profiled as categorical.
pub const MAX_CATEGORIES: usize = 20;

/// A model's reference data profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The format of this file (1).
    pub format: u32,
    /// Rows the profile was computed from.
    pub rows: u64,
    /// Where they came from (a file name), for people reading the file.
    #[serde(default)]
    pub source: String,
    /// One per input feature.
    pub inputs: Vec<ColumnProfile>,
    /// One per output column (the model's predictions on the same rows).
    pub outputs: Vec<ColumnProfile>,
}

/// One column: a feature of an input tensor or a column of an output tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// The column's name (the data file's column, or `tensor[i]`).
    pub name: String,
    /// The model tensor it belongs to.
    pub tensor: String,
    /// Its index along the tensor's last dimension (0 for a tensor of one column per row).
    pub index: usize,
    /// Values seen, missing ones included.
    pub count: u64,
    /// Missing values (NaN, empty).
    pub missing: u64,
    /// The distribution.
    #[serde(flatten)]
    pub kind: ColumnKind,
}

/// A column's reference distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnKind {
    /// Real values.
    Numeric {
        /// Smallest and largest value seen.
        min: f64,
        /// Largest value seen.
        max: f64,
        /// Mean.
        mean: f64,
        /// Standard deviation (population).
        std: f64,
        /// `(p, value)` for p in 0, 1, 5, 25, 50, 75, 95, 99, 100 %.
        quantiles: Vec<(f64, f64)>,
        /// Interior bin edges (the reference's distinct deciles); bins are `(-inf, e0]`,
        /// `(e0, e1]`, ..., `(e_last, inf)`.
        edges: Vec<f64>,
        /// The reference's share in each bin (`edges.len() + 1` of them).
        shares: Vec<f64>,
        /// Up to [`REFERENCE_SAMPLE`] reference values, ascending, for the KS test.
        sample: Vec<f64>,
    },
    /// Labels.
    Categorical {
        /// Each category's share of the non-missing values.
        categories: BTreeMap<String, f64>,
    },
}

impl ColumnProfile {
    /// Profiles numeric `values` (NaN = missing); integer-valued columns with at most
    /// [`MAX_CATEGORIES`] distinct values become categorical when `integers` says the
    /// column's type is an integer type.
    pub fn numeric(
        name: &str,
        tensor: &str,
        index: usize,
        values: &[f64],
        integers: bool,
    ) -> ColumnProfile {
        let mut present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        let missing = (values.len() - present.len()) as u64;
        present.sort_by(f64::total_cmp);
        let mut distinct = present.clone();
        distinct.dedup();
        let kind = if integers && distinct.len() <= MAX_CATEGORIES {
            let labels: Vec<String> = present.iter().map(|v| category_of(*v)).collect();
            categorical_kind(labels.iter().map(String::as_str))
        } else {
            numeric_kind(&present)
        };
        ColumnProfile {
            name: name.to_owned(),
            tensor: tensor.to_owned(),
            index,
            count: values.len() as u64,
            missing,
            kind,
        }
    }

    /// Profiles string values (`None` = missing) as categories.
    pub fn categorical<'a>(
        name: &str,
        tensor: &str,
        index: usize,
        values: impl IntoIterator<Item = Option<&'a str>>,
    ) -> ColumnProfile {
        let values: Vec<Option<&str>> = values.into_iter().collect();
        let missing = values.iter().filter(|v| v.is_none()).count() as u64;
        ColumnProfile {
            name: name.to_owned(),
            tensor: tensor.to_owned(),
            index,
            count: values.len() as u64,
            missing,
            kind: categorical_kind(values.into_iter().flatten()),
        }
    }
}

/// The category label of a numeric value: integers without a decimal point (`3`, not `3.0`).
pub fn category_of(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

fn categorical_kind<'a>(labels: impl Iterator<Item = &'a str>) -> ColumnKind {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    let mut n = 0.0;
    for label in labels {
        *counts.entry(label.to_owned()).or_default() += 1.0;
        n += 1.0;
    }
    for share in counts.values_mut() {
        *share /= n;
    }
    ColumnKind::Categorical { categories: counts }
}

/// `sorted` must be ascending, without NaN.
fn numeric_kind(sorted: &[f64]) -> ColumnKind {
    let n = sorted.len();
    if n == 0 {
        return ColumnKind::Numeric {
            min: f64::NAN,
            max: f64::NAN,
            mean: f64::NAN,
            std: f64::NAN,
            quantiles: Vec::new(),
            edges: Vec::new(),
            shares: vec![1.0],
            sample: Vec::new(),
        };
    }
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let var = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let quantiles = [0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0]
        .iter()
        .map(|&p| (p, quantile(sorted, p)))
        .collect();
    let mut edges: Vec<f64> = (1..10).map(|d| quantile(sorted, d as f64 / 10.0)).collect();
    edges.dedup();
    // A bin's upper edge is inclusive: a column that is mostly one value (zeros in sparse
    // features) gets that value's own bin instead of sharing one with what lies above it.
    let shares = bin_shares(&edges, sorted);
    let step = n.div_ceil(REFERENCE_SAMPLE).max(1);
    let sample = sorted.iter().step_by(step).copied().collect();
    ColumnKind::Numeric {
        min: sorted[0],
        max: sorted[n - 1],
        mean,
        std: var.sqrt(),
        quantiles,
        edges,
        shares,
        sample,
    }
}

/// The `p` quantile of ascending `sorted` by linear interpolation (numpy's default).
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The bin of `value` among `edges` (upper edges inclusive).
pub fn bin_of(edges: &[f64], value: f64) -> usize {
    edges.partition_point(|&e| e < value)
}

/// Each bin's share of `values` (NaN skipped).
pub fn bin_shares(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 1];
    let mut n = 0.0;
    for &v in values.iter().filter(|v| !v.is_nan()) {
        counts[bin_of(edges, v)] += 1.0;
        n += 1.0;
    }
    if n > 0.0 {
        for c in &mut counts {
            *c /= n;
        }
    }
    counts
}

/// The population stability index of `actual` shares against `expected` ones (same bins):
/// `sum((a - e) * ln(a / e))`, each share floored at [`PSI_FLOOR`]. Under 0.1 is usually
/// read as stable, over 0.25 as a shift.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(PSI_FLOOR), a.max(PSI_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The two-sample Kolmogorov–Smirnov statistic of ascending `a` and `b` (no NaN): the largest
/// distance between their empirical distribution functions, as `scipy.stats.ks_2samp`.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return f64::NAN;
    }
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < n && j < m {
        // Step past every copy of the smaller value in both samples before comparing, so ties
        // are counted as scipy counts them.
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    d
}

/// The asymptotic two-sided p-value of a two-sample KS statistic `d` over samples of `n` and
/// `m` values: Kolmogorov's limiting distribution at `sqrt(nm / (n + m)) * d`, as
/// `scipy.stats.kstwobign.sf` (`ks_2samp`'s "asymp" method uses the finite-sample
/// distribution instead; the two differ by about 2% at a thousand values).
pub fn ks_pvalue(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 || d.is_nan() {
        return f64::NAN;
    }
    let en = (n * m) as f64 / (n + m) as f64;
    kolmogorov_sf(en.sqrt() * d)
}

/// `P(K > z)` for Kolmogorov's distribution: `2 * sum_{k>=1} (-1)^(k-1) exp(-2 k^2 z^2)`.
fn kolmogorov_sf(z: f64) -> f64 {
    if z < 0.2 {
        // The series converges slowly there and the value is 1 to double precision.
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let term = (-2.0 * (k * k) as f64 * z * z).exp();
        sum += if k % 2 == 1 { term } else { -term };
        if term < 1e-17 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Pearson's chi-square statistic of `observed` counts against `expected` shares scaled to
/// the observed total, as `scipy.stats.chisquare(observed, expected * total)`; categories
/// the reference never saw are expected at [`PSI_FLOOR`].
pub fn chi_square(expected: &[f64], observed: &[f64]) -> f64 {
    let total: f64 = observed.iter().sum();
    expected
        .iter()
        .zip(observed)
        .map(|(&e, &o)| {
            let e = e.max(PSI_FLOOR) * total;
            (o - e).powi(2) / e
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_distributions_do_not_drift() {
        let values: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin()).collect();
        let p = ColumnProfile::numeric("x", "input", 0, &values, false);
        let ColumnKind::Numeric {
            edges,
            shares,
            sample,
            ..
        } = &p.kind
        else {
            panic!("numeric")
        };
        assert_eq!(edges.len(), 9);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(psi(shares, &bin_shares(edges, &values)) < 1e-12);
        let mut sorted = values;
        sorted.sort_by(f64::total_cmp);
        assert_eq!(ks_two_sample(sample, &sorted), 0.0);
    }

    #[test]
    fn few_integers_are_categories_and_nan_is_missing() {
        let p = ColumnProfile::numeric("y", "label", 0, &[0.0, 1.0, 1.0, f64::NAN], true);
        assert_eq!(p.missing, 1);
        let ColumnKind::Categorical { categories } = &p.kind else {
            panic!("categorical")
        };
        assert_eq!(categories["1"], 2.0 / 3.0);
        assert_eq!(category_of(2.5), "2.5");
    }

    #[test]
    fn ks_counts_ties_in_both_samples() {
        assert_eq!(ks_two_sample(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(ks_two_sample(&[1.0, 1.0], &[2.0, 2.0]), 1.0);
        assert!((ks_two_sample(&[1.0, 2.0], &[2.0, 3.0]) - 0.5).abs() < 1e-12);
        assert_eq!(ks_pvalue(0.0, 10, 10), 1.0);
    }

    #[test]
    fn a_profile_round_trips_through_json() {
        let p = Profile {
            format: 1,
            rows: 3,
            source: "t.csv".into(),
            inputs: vec![ColumnProfile::numeric(
                "a",
                "input",
                0,
                &[1.0, 2.0, 3.0],
                false,
            )],
            outputs: vec![ColumnProfile::categorical(
                "label",
                "label",
                0,
                [Some("x"), None],
            )],
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"type\":\"numeric\""), "{text}");
        assert_eq!(serde_json::from_str::<Profile>(&text).unwrap(), p);
    }
}
