//! The hot path: what runs per request. Each profiled tensor has a [`Tap`] whose columns
//! check every value against the reference (counting the missing and out-of-range ones) and
//! write it into the tensor's [`Window`]; one atomic reservation per tensor and one relaxed
//! store per value, no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use ferroserve_core::profile::{ColumnKind, ColumnProfile};
use ferroserve_core::{DataType, Tensor, TensorData};

use super::window::Window;

/// The taps on one tensor.
#[derive(Debug)]
pub(super) struct Tap {
    tensor: String,
    columns: Vec<TapColumn>,
    window: Window,
}

/// One monitored column of a tensor.
#[derive(Debug)]
pub(super) struct TapColumn {
    /// Its profile, in `inputs` or `outputs`.
    profile: usize,
    /// Its index in a row of the tensor.
    index: usize,
    /// What a value is checked against, and what the window holds.
    reference: Reference,
    missing: AtomicU64,
    out_of_range: AtomicU64,
}

impl Tap {
    /// Rows written since load.
    pub(super) fn written(&self) -> u64 {
        self.window.written()
    }

    /// Each column, in slot order, with the non-missing values its window holds now.
    pub(super) fn readings(&self) -> impl Iterator<Item = (&TapColumn, Vec<f64>)> {
        self.columns.iter().enumerate().map(|(slot, c)| {
            let values = (self.window.column(slot).into_iter())
                .filter(|v| !v.is_nan())
                .collect();
            (c, values)
        })
    }
}

impl TapColumn {
    /// Its profile's index, in `inputs` or `outputs`.
    pub(super) fn profile(&self) -> usize {
        self.profile
    }

    /// Whether its window holds category codes (a BYTES tensor's), -1 for a category the
    /// reference never saw, rather than the values themselves.
    pub(super) fn holds_codes(&self) -> bool {
        matches!(self.reference, Reference::Text(_))
    }

    /// Missing (NaN) values seen since load.
    pub(super) fn missing(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }

    /// Values outside the reference's range, or categories it never saw, since load.
    pub(super) fn out_of_range(&self) -> u64 {
        self.out_of_range.load(Ordering::Relaxed)
    }
}

/// A column's reference as the request path uses it, chosen from the profile and the
/// tensor's datatype.
#[derive(Debug)]
enum Reference {
    /// Numeric: the window holds the value; outside `[min, max]` is out of range.
    Range(f64, f64),
    /// Categories of a numeric tensor: the window holds the value; one the reference never
    /// saw is out of range (compared as numbers, without formatting each value).
    Numbers(Vec<f64>),
    /// Categories of a BYTES tensor: the window holds the category's code (its position in
    /// the profile), -1 for one the reference never saw.
    Text(HashMap<Vec<u8>, usize>),
}

impl Reference {
    /// The reference of a column of `kind` in a tensor of `datatype`.
    fn of(kind: &ColumnKind, datatype: DataType) -> Reference {
        match kind {
            ColumnKind::Numeric { min, max, .. } => Reference::Range(*min, *max),
            ColumnKind::Categorical { categories } if datatype == DataType::Bytes => {
                Reference::Text(
                    categories
                        .keys()
                        .enumerate()
                        .map(|(i, k)| (k.as_bytes().to_vec(), i))
                        .collect(),
                )
            }
            ColumnKind::Categorical { categories } => {
                Reference::Numbers(categories.keys().filter_map(|k| k.parse().ok()).collect())
            }
        }
    }

    /// Whether a (non-missing) window value lies outside the reference.
    fn is_outside(&self, value: f64) -> bool {
        match self {
            Reference::Range(min, max) => value < *min || value > *max,
            Reference::Numbers(known) => !known.contains(&value),
            Reference::Text(_) => value < 0.0,
        }
    }
}

/// The taps of the profiled columns, one per tensor; `datatype` is each tensor's in the
/// signature (every one is there: checked by the caller).
pub(super) fn taps(
    columns: &[ColumnProfile],
    rows: usize,
    datatype: impl Fn(&str) -> Option<DataType>,
) -> Vec<Tap> {
    let mut tensors: Vec<(&str, DataType)> = Vec::new();
    for c in columns {
        if let Some(d) = datatype(&c.tensor)
            && !tensors.iter().any(|(t, _)| *t == c.tensor)
        {
            tensors.push((&c.tensor, d));
        }
    }
    tensors
        .into_iter()
        .map(|(tensor, datatype)| {
            let tapped: Vec<TapColumn> = columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.tensor == tensor)
                .map(|(profile, c)| TapColumn {
                    profile,
                    index: c.index,
                    reference: Reference::of(&c.kind, datatype),
                    missing: AtomicU64::new(0),
                    out_of_range: AtomicU64::new(0),
                })
                .collect();
            Tap {
                tensor: tensor.to_owned(),
                window: Window::new(rows, tapped.len()),
                columns: tapped,
            }
        })
        .collect()
}

/// Writes the rows of each tapped tensor of `tensors` into its window.
pub(super) fn observe(taps: &[Tap], tensors: &[Tensor]) {
    for tap in taps {
        let Some(t) = tensors.iter().find(|t| t.name == tap.tensor) else {
            continue;
        };
        let rows = t.shape.first().copied().unwrap_or(1).max(1);
        let width = t.len() / rows;
        if width == 0 {
            continue;
        }
        let start = tap.window.reserve(rows);
        let data = t.data();
        for r in 0..rows {
            for (slot, c) in tap.columns.iter().enumerate() {
                let i = r * width + c.index;
                let value = match (&c.reference, data) {
                    (Reference::Text(codes), TensorData::Bytes(b)) => match b.get(i) {
                        Some(bytes) => codes.get(bytes).map_or(-1.0, |&k| k as f64),
                        None => f64::NAN,
                    },
                    _ => data.get_f64(i).unwrap_or(f64::NAN),
                };
                if value.is_nan() {
                    c.missing.fetch_add(1, Ordering::Relaxed);
                } else if c.reference.is_outside(value) {
                    c.out_of_range.fetch_add(1, Ordering::Relaxed);
                }
                tap.window.put(start + r as u64, slot, value);
            }
        }
    }
}
