"""Regenerates the custom resources' schemas in this folder from the projects' CRD files.

Kubernetes' own kinds are validated with kubernetes-validate's schemas; KServe's and the
Prometheus operator's kinds are not in those, so their CRDs' `openAPIV3Schema` is kept here,
descriptions removed (they are 90% of the bytes), gzipped. Run with the CRD files of the
versions you target:

    python deploy/schemas/update.py SOURCE_LABEL CRD.yaml [CRD.yaml ...]

e.g. `kserve@v0.16 config/crd/full/serving.kserve.io_inferenceservices.yaml`.
"""

import gzip
import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent


def without_descriptions(node):
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def main(source, paths):
    for path in paths:
        crd = yaml.safe_load(open(path))
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            document = {
                "apiVersion": f"{group}/{version['name']}",
                "kind": kind,
                "source": f"{source} {pathlib.Path(path).name}",
                "schema": without_descriptions(version["schema"]["openAPIV3Schema"]),
            }
            out = HERE / f"{group}_{version['name']}_{kind.lower()}.json.gz"
            data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
            # mtime=0: the same CRD gives the same bytes.
            out.write_bytes(gzip.compress(data, mtime=0))
            print(f"{out.name}: {len(data)} bytes of schema", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
