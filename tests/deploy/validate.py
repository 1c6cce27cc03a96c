"""Validates every manifest under deploy/ against the Kubernetes schemas, strictly.

Kubernetes' own kinds (Deployment, Service, HPA, ...) go through kubernetes-validate's schemas
for the target Kubernetes version, unknown fields rejected. Custom resources (KServe's
ClusterServingRuntime and InferenceService, the Prometheus operator's ServiceMonitor) go through
their CRDs' OpenAPI schemas kept in deploy/schemas, made strict the way the API server's field
validation is: an object that lists its properties accepts no others, unless the schema says
`x-kubernetes-preserve-unknown-fields`. A kustomization's resources must exist.

Usage: python tests/deploy/validate.py [-k KUBERNETES_VERSION]
"""

import argparse
import gzip
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def strict(schema):
    """The schema with `additionalProperties: false` wherever properties are listed."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def custom_schemas():
    schemas = {}
    for path in sorted((DEPLOY / "schemas").glob("*.json.gz")):
        document = json.loads(gzip.decompress(path.read_bytes()))
        schemas[(document["apiVersion"], document["kind"])] = strict(document["schema"])
    return schemas


def check_kustomization(path, resource):
    errors = []
    for name in resource.get("resources", []):
        if not (path.parent / name).exists():
            errors.append(f"resources: {name} does not exist")
    return errors


def check(path, resource, schemas, version):
    key = (resource.get("apiVersion"), resource.get("kind"))
    if key == ("kustomize.config.k8s.io/v1beta1", "Kustomization"):
        return check_kustomization(path, resource)
    if key in schemas:
        validator = jsonschema.Draft7Validator(schemas[key])
        return [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in validator.iter_errors(resource)
        ]
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[1]} {key[0]}: add its CRD to deploy/schemas"]
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(str(p) for p in e.path) or '(top)'}: {e.message}"]
    return []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-k", "--kubernetes-version", default="1.37.0")
    args = parser.parse_args()
    schemas = custom_schemas()
    failures = 0
    count = 0
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for resource in yaml.safe_load_all(path.read_text()):
            if resource is None:
                continue
            count += 1
            name = f"{path.relative_to(ROOT)}: {resource.get('kind')}/{resource.get('metadata', {}).get('name', '')}"
            errors = check(path, resource, schemas, args.kubernetes_version)
            for error in errors:
                print(f"FAIL {name}: {error}")
            if errors:
                failures += 1
            else:
                print(f"ok   {name}")
    print(f"{count - failures} of {count} manifests valid (Kubernetes {args.kubernetes_version})")
    return 1 if failures or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
