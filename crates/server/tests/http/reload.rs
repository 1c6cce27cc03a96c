//! Reloads through the repository itself: what is rebuilt, what is kept, warm-up files, and
//! label moves.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferroserve_server::repository::Repository;
use ferroserve_server::runtime_registry;
use serde_json::json;

use crate::kit::{temp_repository, temp_repository_two_iris};

fn iris_version(
    repository: &Repository,
    version: &str,
) -> Arc<ferroserve_server::repository::LoadedVersion> {
    repository.resolve("iris_logreg", Some(version)).unwrap()
}

#[test]
fn unchanged_versions_are_kept_and_changed_ones_rebuilt() {
    let repo = temp_repository_two_iris("");
    let iris = repo.path().join("iris_logreg");
    let repository = Repository::new(repo.path(), runtime_registry());
    repository.load("iris_logreg").unwrap();
    let (v1, v2) = (
        iris_version(&repository, "1"),
        iris_version(&repository, "2"),
    );

    // Nothing changed: the same builds.
    repository.load("iris_logreg").unwrap();
    assert!(Arc::ptr_eq(&v1, &iris_version(&repository, "1")));
    assert!(Arc::ptr_eq(&v2, &iris_version(&repository, "2")));

    // Only labels changed: nothing is rebuilt, the labels apply.
    std::fs::write(
        iris.join("model.toml"),
        "version_policy = \"all\"\nlabels = { stable = 1 }\n",
    )
    .unwrap();
    repository.load("iris_logreg").unwrap();
    assert!(Arc::ptr_eq(&v1, &iris_version(&repository, "1")));
    assert_eq!(
        repository
            .resolve_label("iris_logreg", "stable")
            .unwrap()
            .version,
        1
    );

    // One version's file changed: only that one is rebuilt.
    std::fs::write(iris.join("2/notes.txt"), "retrained").unwrap();
    repository.load("iris_logreg").unwrap();
    assert!(Arc::ptr_eq(&v1, &iris_version(&repository, "1")));
    let v2b = iris_version(&repository, "2");
    assert!(!Arc::ptr_eq(&v2, &v2b));

    // A setting every version depends on changed: all are rebuilt.
    std::fs::write(
        iris.join("model.toml"),
        "version_policy = \"all\"\nlabels = { stable = 1 }\nmax_queue_size = 7\n",
    )
    .unwrap();
    repository.load("iris_logreg").unwrap();
    assert!(!Arc::ptr_eq(&v1, &iris_version(&repository, "1")));
    assert!(!Arc::ptr_eq(&v2b, &iris_version(&repository, "2")));
}

#[test]
fn a_broken_model_toml_keeps_the_loaded_versions_serving() {
    let repo = temp_repository();
    let iris = repo.path().join("iris_logreg");
    let repository = Repository::new(repo.path(), runtime_registry());
    repository.load("iris_logreg").unwrap();
    let v1 = iris_version(&repository, "1");
    std::fs::write(iris.join("model.toml"), "max_batch = 4\n").unwrap();
    repository.load("iris_logreg").unwrap();
    assert!(Arc::ptr_eq(&v1, &iris_version(&repository, "1")));
    let row = repository
        .index()
        .unwrap()
        .into_iter()
        .find(|r| r.name == "iris_logreg")
        .unwrap();
    assert_eq!(row.state, Some("READY"));
    assert!(row.reason.contains("max_batch"), "{}", row.reason);
    assert!(row.reason.contains("still serving"), "{}", row.reason);
}

#[test]
fn warm_up_requests_come_from_the_file_and_a_failing_one_fails_the_version() {
    let repo = temp_repository();
    let iris = repo.path().join("iris_logreg");
    let repository = Repository::new(repo.path(), runtime_registry());

    // A good file (two requests) loads.
    let request = crate::kit::oracle("iris_logreg", "request.json");
    std::fs::write(
        iris.join("1/warmup.json"),
        serde_json::to_vec(&json!([request, request])).unwrap(),
    )
    .unwrap();
    repository.load("iris_logreg").unwrap();

    // A request the model refuses fails the version, naming the file and the request.
    std::fs::write(
        iris.join("1/warmup.json"),
        serde_json::to_vec(&json!({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}))
            .unwrap(),
    )
    .unwrap();
    let fresh = Repository::new(repo.path(), runtime_registry());
    let error = fresh.load("iris_logreg").unwrap_err().to_string();
    assert!(error.contains("warmup.json request 1"), "{error}");
    assert!(error.contains("nope"), "{error}");

    // `warmup = "file"` needs the file.
    std::fs::remove_file(iris.join("1/warmup.json")).unwrap();
    std::fs::write(iris.join("model.toml"), "warmup = \"file\"\n").unwrap();
    let error = fresh.load("iris_logreg").unwrap_err().to_string();
    assert!(error.contains("no warmup.json"), "{error}");
}

#[test]
fn labels_move_only_to_ready_versions() {
    let repo = temp_repository_two_iris("labels = { stable = 1 }\n");
    let repository = Repository::new(repo.path(), runtime_registry());
    repository.load("iris_logreg").unwrap();
    let moves = BTreeMap::from([
        ("stable".to_owned(), Some(2)),
        ("canary".to_owned(), Some(1)),
    ]);
    let labels = repository.set_labels("iris_logreg", &moves).unwrap();
    assert_eq!(
        labels,
        BTreeMap::from([("canary".to_owned(), 1), ("stable".to_owned(), 2)])
    );
    // A reload that does not touch model.toml keeps the moved labels.
    repository.load("iris_logreg").unwrap();
    assert_eq!(
        repository
            .resolve_label("iris_logreg", "stable")
            .unwrap()
            .version,
        2
    );
    let error = repository
        .set_labels(
            "iris_logreg",
            &BTreeMap::from([("stable".to_owned(), Some(9))]),
        )
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("version 9") && error.contains("[1, 2]"),
        "{error}"
    );
    // A failed move changes nothing.
    assert_eq!(
        repository
            .resolve_label("iris_logreg", "stable")
            .unwrap()
            .version,
        2
    );
    let removed = repository
        .set_labels(
            "iris_logreg",
            &BTreeMap::from([("canary".to_owned(), None)]),
        )
        .unwrap();
    assert_eq!(removed, BTreeMap::from([("stable".to_owned(), 2)]));
    let error = repository
        .resolve_label("iris_logreg", "canary")
        .unwrap_err()
        .to_string();
    assert!(error.contains("no label 'canary'"), "{error}");
}

#[test]
fn a_model_asked_for_before_the_start_up_load_ends_is_not_ready_rather_than_unknown() {
    let repo = temp_repository();
    let repository = Repository::new(repo.path(), runtime_registry());
    // Not loaded yet: a load balancer should try another replica (503), not give up (404).
    let early = repository
        .resolve("iris_logreg", None)
        .unwrap_err()
        .to_string();
    assert!(
        early.contains("still loading its model repository"),
        "{early}"
    );
    repository.load_all().unwrap();
    assert!(repository.resolve("iris_logreg", None).is_ok());
    let unknown = repository.resolve("nope", None).unwrap_err().to_string();
    assert_eq!(unknown, "unknown model 'nope'");
}
