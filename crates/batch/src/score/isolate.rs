//! Bad-row isolation: the reason each row of a batch failed, if any, kept only once a row
//! fails, and written out as the batch's error column.

use arrow_array::StringArray;
use arrow_array::builder::StringBuilder;

/// Why each row failed, allocated on the first failure.
#[derive(Debug)]
pub(super) struct RowErrors {
    rows: usize,
    reasons: Option<Vec<Option<String>>>,
}

impl RowErrors {
    /// No row failed yet, of `rows`.
    pub(super) fn new(rows: usize) -> RowErrors {
        RowErrors {
            rows,
            reasons: None,
        }
    }

    /// Whether row `row` has not failed.
    pub(super) fn ok(&self, row: usize) -> bool {
        self.reasons.as_ref().is_none_or(|r| r[row].is_none())
    }

    /// Records the first reason row `row` fails.
    pub(super) fn fail(&mut self, row: usize, reason: impl FnOnce() -> String) {
        let rows = self.rows;
        let reasons = self.reasons.get_or_insert_with(|| vec![None; rows]);
        if reasons[row].is_none() {
            reasons[row] = Some(reason());
        }
    }

    /// The error column: each failed row's reason, null for the others.
    pub(super) fn into_array(self) -> StringArray {
        match self.reasons {
            None => StringArray::new_null(self.rows),
            Some(reasons) => {
                let mut b = StringBuilder::with_capacity(self.rows, 0);
                for r in reasons {
                    b.append_option(r);
                }
                b.finish()
            }
        }
    }
}
