//! What access control costs one request: `Access::authorize` for an inference call with a
//! bearer key, among 1 and 100 keys (every key's hash is compared, in constant time), with a
//! per-model limit and with a rate limit; the open server's path; and a JWT bearer token seen
//! before (verified once, then answered from the cache), ES256 and RS256. Run with
//! `cargo bench -p ferroserve-server --bench access`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferroserve_server::access::jwt::{Jwt, JwtSettings};
use ferroserve_server::access::keys::{KeyEntry, entry_toml, generate_key};
use ferroserve_server::access::rate::Rate;
use ferroserve_server::access::{Access, Requirement, Scope};
use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::sync::Arc;

/// An access verifying JWTs of one key (`kty`: ES256 or RS256), and the headers of a request
/// bearing a valid token with the `infer` scope.
fn with_jwt(algorithm: Algorithm) -> (Access, HeaderMap, tempfile::TempDir) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let (key, jwk) = match algorithm {
        Algorithm::RS256 => (
            EncodingKey::from_rsa_pem(
                &std::fs::read(fixtures.join("rs256-test-private.pem")).unwrap(),
            )
            .unwrap(),
            serde_json::from_slice(
                &std::fs::read(fixtures.join("rs256-test-public.jwk.json")).unwrap(),
            )
            .unwrap(),
        ),
        _ => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let point = pair.public_key_raw();
            let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "rsa-1",
                "x": b64(&point[1..33]), "y": b64(&point[33..65])});
            (EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::json!({"keys": [jwk]}).to_string()).unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({"sub": "bench", "exp": exp, "scope": "infer read"});
    let header = Header {
        kid: Some("rsa-1".into()),
        ..Header::new(algorithm)
    };
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let jwt = Jwt::new(JwtSettings::new(path.display().to_string())).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    (Access::open().with_jwt(Arc::new(jwt)), headers, dir)
}

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

fn authorize_jwt(c: &mut Criterion) {
    let needed = Requirement::infer_on("m");
    for (name, algorithm) in [
        ("authorize/JWT ES256, seen before", Algorithm::ES256),
        ("authorize/JWT RS256, seen before", Algorithm::RS256),
    ] {
        let (access, headers, _dir) = with_jwt(algorithm);
        assert!(access.authorize(&headers, &needed, None).is_ok());
        c.bench_function(name, |b| {
            b.iter(|| black_box(access.authorize(black_box(&headers), &needed, None).is_ok()))
        });
    }
}

criterion_group!(benches, authorize, authorize_jwt);
criterion_main!(benches);
