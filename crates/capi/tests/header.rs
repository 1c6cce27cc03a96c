//! `include/ferroserve.h` is what cbindgen makes of the sources: regenerated here and compared
//! with the committed file. `FERROSERVE_BLESS=1` rewrites the file instead of failing.

use std::path::Path;

#[test]
fn the_committed_header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/lib.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen: {e}"));
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("cbindgen writes UTF-8");

    let path = root.join("include/ferroserve.h");
    if std::env::var_os("FERROSERVE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(generated.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} is out of date (first difference at line {line}): the C API changed. Regenerate \
             it with `FERROSERVE_BLESS=1 cargo test -p ferroserve-capi --test header` and \
             review the diff.",
            path.display()
        );
    }
    for function in [
        "ferroserve_model_load",
        "ferroserve_model_predict",
        "ferroserve_last_error",
        "FERROSERVE_STATUS_INVALID_INPUT",
    ] {
        assert!(
            generated.contains(function),
            "{function} missing from the header"
        );
    }
}
