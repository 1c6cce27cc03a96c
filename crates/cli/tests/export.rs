//! `ferroserve export --target web` and `ferroserve serve --static`, as a user runs them: the
//! exported folder holds the model file unchanged and a manifest the JavaScript package reads,
//! and the server serves a folder of files beside its API. (The folder running in a browser is
//! checked by examples/web/test, from scripts/test-web.sh.)

mod common;

use common::{Server, block_on, ferroserve, root, start_server};
use serde_json::Value;

#[test]
fn export_writes_the_model_file_and_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    for (model, file, engine, build) in [
        (
            "examples/models/iris_logreg",
            "model.onnx",
            "onnx-ml",
            "trees",
        ),
        (
            "examples/models/digits_mlp@1",
            "model.onnx",
            "tract",
            "full",
        ),
    ] {
        let out_dir = dir.path().join(engine);
        let out = ferroserve(&[
            "export",
            "--target",
            "web",
            "--model",
            model,
            "--output",
            out_dir.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{model}: {stderr}");
        assert!(stderr.contains(&format!("runs in the {build}")), "{stderr}");
        let source = root()
            .join(model.split('@').next().unwrap())
            .join("1")
            .join(file);
        assert_eq!(
            std::fs::read(out_dir.join(file)).unwrap(),
            std::fs::read(source).unwrap(),
            "{model}: the model file is copied unchanged"
        );
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("ferroserve.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["version"], "1");
        assert_eq!(manifest["format"], "onnx");
        assert_eq!(manifest["file"], file);
        assert_eq!(manifest["engine"], engine);
        assert_eq!(manifest["build"], build);
        assert_eq!(manifest["signature"]["inputs"][0]["name"], "input");
        assert_eq!(manifest["signature"]["inputs"][0]["datatype"], "FP32");
        assert_eq!(manifest["signature"]["outputs"][0]["name"], "label");
    }
}

#[test]
fn export_refuses_what_it_cannot_export_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let run = |model: &str| {
        let out = ferroserve(&[
            "export",
            "--model",
            model,
            "--output",
            output.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{model}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("examples/models/iris_logreg@canary");
    assert!(err.contains("no version label 'canary'"), "{err}");
    let err = run("examples/models/nothing");
    assert!(err.contains("nothing"), "{err}");
    // A version whose file is not a model the embedded builds load.
    let repo = dir.path().join("repo/broken/1");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("model.json"), b"{\"learner\": 1}").unwrap();
    let err = run(dir.path().join("repo/broken").to_str().unwrap());
    assert!(err.contains("model.json"), "{err}");
    assert!(!output.join("ferroserve.json").exists());
}

#[test]
fn serve_static_serves_a_folder_beside_the_api() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::create_dir(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/m.wasm"), b"\0asm\x01\0\0\0").unwrap();
    // What must not be served: hidden files, and links out of the folder.
    std::fs::write(site.path().join(".env"), "SECRET=1").unwrap();
    std::fs::create_dir(site.path().join(".git")).unwrap();
    std::fs::write(site.path().join(".git/config"), "[core]").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path().join("passwd"), site.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), site.path().join("outdir")).unwrap();
        std::os::unix::fs::symlink(site.path().join("index.html"), site.path().join("in.html"))
            .unwrap();
    }
    let Server {
        mut child,
        addr,
        log: _log,
    } = start_server(&["--static", site.path().to_str().unwrap()]);
    block_on(async {
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("http://{addr}{path}")).send();
        let index = get("/").await.unwrap();
        assert_eq!(index.status(), 200);
        assert_eq!(index.text().await.unwrap(), "<h1>demo</h1>");
        let wasm = get("/pkg/m.wasm").await.unwrap();
        assert_eq!(wasm.headers()["content-type"], "application/wasm");
        assert_eq!(get("/v2/health/live").await.unwrap().status(), 200);
        let missing = get("/pkg/none.js").await.unwrap();
        assert_eq!(missing.status(), 404);
        let body: Value = missing.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("/pkg/none.js"),
            "{body}"
        );
        // Nothing outside the folder, and nothing hidden.
        for path in [
            "/../Cargo.toml",
            "/.env",
            "/.git/config",
            "/%2Eenv",
            "/pkg/../.env",
            "/out",
            "/outdir/passwd",
        ] {
            let response = get(path).await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
            let text = response.text().await.unwrap();
            assert!(
                !text.contains("SECRET") && !text.contains("root:"),
                "{path}: {text}"
            );
        }
        // A link inside the folder is served.
        #[cfg(unix)]
        assert_eq!(
            get("/in.html").await.unwrap().text().await.unwrap(),
            "<h1>demo</h1>"
        );
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let out = ferroserve(&["serve", "--static", "no/such/dir"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--static no/such/dir: not a directory"));
}
