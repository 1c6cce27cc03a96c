//! What the CLI's integration tests share: the repository root, and `ferroserve serve` started
//! on free ports.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

/// The repository root (the tests run the binary from there, as a user would).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the `ferroserve` binary with `args` from the repository root and waits for it.
#[allow(dead_code)] // each test binary compiles this module; not all use every item
pub(crate) fn ferroserve(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

/// Runs the `ferroserve` binary with `args` and asserts it succeeded (printing its stderr
/// when not); its output.
#[allow(dead_code)]
pub(crate) fn ferroserve_ok(args: &[&str]) -> std::process::Output {
    let out = ferroserve(args);
    assert!(
        out.status.success(),
        "ferroserve {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the `ferroserve` binary with `args`, asserts it failed, and asserts its stderr holds
/// every one of `needles`; that stderr.
#[allow(dead_code)]
pub(crate) fn ferroserve_fails(args: &[&str], needles: &[&str]) -> String {
    let out = ferroserve(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "ferroserve {args:?} succeeded: {stderr}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "ferroserve {args:?}: no {needle:?} in {stderr}"
        );
    }
    stderr
}

/// Runs `future` to completion on a one-thread tokio runtime (for the HTTP clients of tests).
#[allow(dead_code)]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A running `ferroserve serve`.
pub(crate) struct Server {
    /// The process.
    pub(crate) child: Child,
    /// Its HTTP address, `127.0.0.1:PORT`.
    #[allow(dead_code)] // each test binary compiles this module; not all read every field
    pub(crate) addr: String,
    /// The rest of its log (stderr), after the "listening" line.
    pub(crate) log: Lines<BufReader<ChildStderr>>,
}

/// Starts `ferroserve serve` from the repository root (the example repository unless `extra`
/// names another) on free ports, and waits for its "listening on" line.
pub(crate) fn start_server(extra: &[&str]) -> Server {
    start_server_with_env(extra, &[])
}

/// [`start_server`] with `env` added to its environment.
pub(crate) fn start_server_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = log
        .by_ref()
        .take(100)
        .map_while(Result::ok)
        .find_map(|l| {
            let at = l.find("listening on http://")?;
            let rest = &l[at + "listening on http://".len()..];
            Some(
                rest.split_whitespace()
                    .next()?
                    .trim_end_matches(',')
                    .to_owned(),
            )
        })
        .expect("no 'listening on' line");
    Server { child, addr, log }
}
