//! XGBoost UBJSON models: parsing never panics, and whatever parses predicts without panicking.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ferroserve_trees::xgboost::parse_ubjson(data) {
        common::exercise::<f32>(m.forest, m.objective, m.base_margin);
    }
});
