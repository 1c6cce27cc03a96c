//! Empty: it exists so that `[build-dependencies]` can align the proc-macro crates' features
//! with the workspace build's (see Cargo.toml).

fn main() {}
