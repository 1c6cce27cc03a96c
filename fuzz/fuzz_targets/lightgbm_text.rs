//! LightGBM text models: parsing never panics, and whatever parses predicts without panicking.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = ferroserve_trees::lightgbm::parse(text) {
        let groups = m.forest.groups;
        common::exercise::<f64>(m.forest, m.objective, vec![0.0; groups]);
    }
});
