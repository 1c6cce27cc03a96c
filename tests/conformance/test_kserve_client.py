"""Client-conformance suite: ferroserve driven by KServe's Python SDK (kserve, pinned in
scripts/requirements.txt): InferenceRESTClient over V2 and V1 (TF Serving's REST predict) with
an API key, and both the REST and the gRPC client over mutual TLS. A process of its own: see
harness.py.

Run: .venv/bin/python -m pytest -q tests/conformance/test_kserve_client.py
"""

from __future__ import annotations

import asyncio

import pytest

from harness import ORACLE, assert_output, bearer


def kserve_request(model: str):
    from kserve import InferInput, InferRequest

    o = ORACLE[model]
    inp = InferInput(o.input_name, list(o.x.shape), o.input_datatype)
    inp.set_data_from_numpy(o.x, binary_data=False)
    return InferRequest(model_name=model, infer_inputs=[inp], request_id="kserve-1")


def assert_kserve_outputs(model: str, response) -> None:
    names = {out.name for out in response.outputs}
    assert names == set(ORACLE[model].output_names), names
    for out in response.outputs:
        assert_output(model, out.name, out.as_numpy())


def test_kserve_rest_client_v2_and_v1_send_their_key(keyed):
    """KServe's InferenceRESTClient with a key header: V2 inference (the oracle's answer), and
    V1, which is TF Serving's REST predict; without the key, 401."""
    import httpx
    from kserve import InferenceRESTClient, RESTConfig

    server, keys = keyed

    async def run():
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
        try:
            with pytest.raises(httpx.HTTPStatusError) as e:
                await v2.infer(server.base_url, kserve_request("iris_logreg"), model_name="iris_logreg")
            assert e.value.response.status_code == 401
            res = await v2.infer(server.base_url, kserve_request("iris_logreg"), model_name="iris_logreg",
                                 headers=bearer(keys["iris"]))
            assert_kserve_outputs("iris_logreg", res)
            rows = ORACLE["iris_logreg"].x.tolist()
            res = await v1.infer(server.base_url, {"instances": rows}, model_name="iris_logreg",
                                 headers=bearer(keys["iris"]))
            assert len(res["predictions"]) == len(rows)
            with pytest.raises(httpx.HTTPStatusError) as e:
                await v1.infer(server.base_url, {"instances": rows}, model_name="digits_mlp",
                               headers=bearer(keys["iris"]))
            assert e.value.response.status_code == 403
        finally:
            await v2.close()
            await v1.close()

    asyncio.run(run())


def test_kserve_clients_over_mutual_tls(tls_server):
    """KServe's REST client (verify: a context with the CA and the client pair) and gRPC client
    (use_ssl with the client certificate) against mutual TLS."""
    from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig

    server, pki, _ = tls_server

    async def run():
        # httpx takes the CA and the client pair as one SSL context.
        rest = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, verify=pki.ssl_context()))
        try:
            res = await rest.infer(server.base_url, kserve_request("iris_logreg"), model_name="iris_logreg")
            assert_kserve_outputs("iris_logreg", res)
        finally:
            await rest.close()
        grpc_client = InferenceGRPCClient(f"127.0.0.1:{server.grpc_port}", use_ssl=True,
                                          root_certificates=str(pki.ca_crt),
                                          private_key=str(pki.client_key),
                                          certificate_chain=str(pki.client_crt), retries=2)
        try:
            res = await grpc_client.infer(kserve_request("iris_logreg"))
            assert_kserve_outputs("iris_logreg", res)
        finally:
            await grpc_client.close()

    asyncio.run(run())
