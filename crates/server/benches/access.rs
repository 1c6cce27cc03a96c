//! What access control costs one request: `Access::authorize` for an inference call with a
//! bearer key, among 1 and 100 keys (every key's hash is compared, in constant time), with a
//! per-model limit and with a rate limit; and the open server's path. Run with
//! `cargo bench -p ferroserve-server --bench access`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferroserve_server::access::keys::{KeyEntry, entry_toml, generate_key};
use ferroserve_server::access::rate::Rate;
use ferroserve_server::access::{Access, Requirement, Scope};
use http::HeaderMap;

/// An access with `count` keys (the last one limited to model `m`, with a generous rate when
/// `rated`), and the headers of a request bearing that last key.
fn keyed(count: usize, rated: bool) -> (Access, HeaderMap, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    let mut text = String::new();
    let mut last = String::new();
    for i in 0..count {
        let (key, hash) = generate_key();
        let mut entry = KeyEntry::new(&format!("k{i}"), hash, &[Scope::Infer, Scope::Read]);
        if i + 1 == count {
            entry = entry.with_models(&["m".to_owned()]);
            if rated {
                entry = entry.with_rate(Rate::new(1e12, Some(1e12)).unwrap());
            }
        }
        text.push_str(&entry_toml(&entry));
        last = key;
    }
    std::fs::write(&path, text).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {last}").parse().unwrap());
    (Access::with_key_file(&path).unwrap(), headers, dir)
}

fn authorize(c: &mut Criterion) {
    let needed = Requirement::infer_on("m");
    let open = Access::open();
    let none = HeaderMap::new();
    c.bench_function("authorize/open", |b| {
        b.iter(|| black_box(open.authorize(black_box(&none), &needed, None).is_ok()))
    });
    for (name, count, rated) in [
        ("authorize/1 key", 1, false),
        ("authorize/100 keys", 100, false),
        ("authorize/1 key, rate limited", 1, true),
    ] {
        let (access, headers, _dir) = keyed(count, rated);
        assert!(access.authorize(&headers, &needed, None).is_ok());
        c.bench_function(name, |b| {
            b.iter(|| black_box(access.authorize(black_box(&headers), &needed, None).is_ok()))
        });
    }
}

criterion_group!(benches, authorize);
criterion_main!(benches);
