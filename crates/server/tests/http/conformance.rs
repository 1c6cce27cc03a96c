//! The numeric conformance cases (tests/conformance/cases.json) through the server: one
//! repository holding every case's every model file as a model (no config: the runtime is
//! selected as a user's would be), loaded once, each asked the case's rows over the four
//! protocols: V2 JSON over HTTP, V2 binary tensors over HTTP, V2 over gRPC (raw contents) and
//! TensorFlow Serving's `:predict` (rows). Each compared output is checked with the manifest's
//! named tolerance, and its shape and datatype where the expectation gives them (TF Serving's
//! answer has neither). The cases and tolerances live in the manifest only.

use ferroserve_conformance::{Case, Check, ModelFile, manifest};
use ferroserve_server::protocol::grpc::proto;
use ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, split_binary};

/// The protocols this test speaks, by their surface names in the manifest.
const SURFACES: [&str; 4] = ["http-json", "http-binary", "grpc", "tfserving"];

/// A model's name in the repository: the case's, and its format when it has several files.
fn model_name(case: &Case, model: &ModelFile) -> String {
    let mut name = case.name.replace('/', "__");
    if case.models.len() > 1 {
        name = format!("{name}__{}", model.format.name());
    }
    name
}

/// An output as received: numbers or strings, with shape and datatype when the protocol says.
struct Got {
    values: Result<Vec<f64>, Vec<String>>,
    shape: Option<Vec<usize>>,
    datatype: Option<String>,
}

fn check(check: &Check, got: &Got, what: &str) {
    if let (Some(shape), Some(datatype)) = (&got.shape, &got.datatype) {
        check.assert_meta(shape, datatype, what);
    }
    match &got.values {
        Ok(numbers) => check.assert_numbers(numbers, what),
        Err(strings) => check.assert_strings(strings, what),
    }
}

/// A JSON number of an output of `datatype`: FP32 values travel as their shortest decimal,
/// so they are read back as f32.
fn json_number(v: &Value, datatype: &str) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    if datatype == "FP32" {
        f64::from(x as f32)
    } else {
        x
    }
}

fn json_values(data: &Value, datatype: &str) -> Result<Vec<f64>, Vec<String>> {
    let data = data.as_array().unwrap();
    if datatype == "BYTES" {
        Err(data
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect())
    } else {
        Ok(data.iter().map(|v| json_number(v, datatype)).collect())
    }
}

/// Binary (little-endian) elements of `datatype`.
fn binary_values(bytes: &[u8], datatype: &str) -> Result<Vec<f64>, Vec<String>> {
    let fixed = |n: usize| bytes.chunks_exact(n).map(|c| c.to_vec());
    Ok(match datatype {
        "FP32" => fixed(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "FP64" => fixed(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "INT64" => fixed(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        "INT32" => fixed(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "BYTES" => {
            let mut strings = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                strings.push(String::from_utf8(rest[4..4 + n].to_vec()).unwrap());
                rest = &rest[4 + n..];
            }
            return Err(strings);
        }
        other => panic!("unexpected datatype {other}"),
    })
}

/// The outputs of a V2 response (its JSON part), each named, its values read by `values`
/// from the output's JSON object and datatype.
fn v2_outputs(
    response: &Value,
    mut values: impl FnMut(&Value, &str) -> Result<Vec<f64>, Vec<String>>,
) -> Vec<(String, Got)> {
    let outputs = response["outputs"].as_array().unwrap();
    outputs
        .iter()
        .map(|o| {
            let datatype = o["datatype"].as_str().unwrap().to_owned();
            let shape = o["shape"].as_array().unwrap();
            let got = Got {
                values: values(o, &datatype),
                shape: Some(shape.iter().map(|d| d.as_u64().unwrap() as usize).collect()),
                datatype: Some(datatype),
            };
            (o["name"].as_str().unwrap().to_owned(), got)
        })
        .collect()
}

/// A JSON value of an FP32 input element: JSON has no NaN number, so the "NaN" token.
fn json_input(v: f32) -> Value {
    if v.is_nan() { json!("NaN") } else { json!(v) }
}

/// `values` of `shape` (after the batch dimension) as nested JSON lists.
fn nested(values: &[f32], shape: &[usize]) -> Value {
    match shape {
        [] => json_input(values[0]),
        [_, inner @ ..] => {
            let step = inner.iter().product::<usize>().max(1);
            Value::Array(values.chunks(step).map(|c| nested(c, inner)).collect())
        }
    }
}

#[tokio::test]
async fn every_case_answers_over_every_protocol() {
    let mut runs = Vec::new();
    for surface in SURFACES {
        runs.push(manifest().runs(surface));
    }
    assert!(
        runs.windows(2).all(|w| w[0].len() == w[1].len()),
        "the server's protocols skip different cases: one model repository serves them all"
    );
    let repo = tempfile::tempdir().unwrap();
    for (case, model) in &runs[0] {
        let dir = repo.path().join(model_name(case, model)).join("1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(model.path(), dir.join(model.file_name())).unwrap();
    }
    let server = TestServer::start(ferroserve_server::ServerConfig::new(repo.path())).await;
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    for (case, model) in &runs[0] {
        let name = model_name(case, model);
        let label = case.label(model);
        let (status, meta) = server.get(&format!("/v2/models/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{label}: {meta}");
        let (_, config) = server.get(&format!("/v2/models/{name}/config")).await;
        assert_eq!(
            config["output"].as_array().unwrap().len(),
            meta["outputs"].as_array().unwrap().len(),
            "{label}: {config}"
        );
        let model_inputs: Vec<String> = meta["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect();
        let inputs = case.inputs();
        for (i, input) in inputs.iter().enumerate() {
            let spec = &meta["inputs"][i];
            assert_eq!(spec["datatype"], "FP32", "{label}");
            let mut shape = vec![json!(-1)];
            shape.extend(input.shape[1..].iter().map(|d| json!(d)));
            assert_eq!(spec["shape"], Value::Array(shape), "{label}");
        }
        let names: Vec<String> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| input.name_in(&model_inputs, i))
            .collect();
        let checks = case.checks();
        let find = |outputs: &[(String, Got)], output: &str, what: &str| -> usize {
            outputs
                .iter()
                .position(|(n, _)| n == output)
                .unwrap_or_else(|| panic!("{what}: no output {output}"))
        };

        // V2 JSON.
        let what = format!("{label} (http-json)");
        let body = json!({"inputs": inputs.iter().zip(&names).map(|(input, n)| json!({
            "name": n, "datatype": "FP32", "shape": input.shape,
            "data": input.data.iter().map(|&v| json_input(v)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()});
        let (status, answer) = server
            .post(&format!("/v2/models/{name}/infer"), &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{what}: {answer}");
        assert_eq!(answer["model_name"], name.as_str(), "{what}");
        assert_eq!(answer["model_version"], "1", "{what}");
        let outputs = v2_outputs(&answer, |o, datatype| json_values(&o["data"], datatype));
        for c in &checks {
            check(c, &outputs[find(&outputs, &c.output, &what)].1, &what);
        }

        // V2 binary tensors both ways.
        let what = format!("{label} (http-binary)");
        let mut binary = Vec::new();
        let header_inputs: Vec<Value> = inputs
            .iter()
            .zip(&names)
            .map(|(input, n)| {
                let start = binary.len();
                binary.extend(input.data.iter().flat_map(|v| v.to_le_bytes()));
                json!({"name": n, "datatype": "FP32", "shape": input.shape,
                       "parameters": {"binary_data_size": binary.len() - start}})
            })
            .collect();
        let header = json!({"inputs": header_inputs, "parameters": {"binary_data_output": true}});
        let mut request = serde_json::to_vec(&header).unwrap();
        let header_length = request.len();
        request.extend_from_slice(&binary);
        let response = server
            .post_raw(
                &format!("/v2/models/{name}/infer"),
                request,
                &[("Inference-Header-Content-Length", header_length.to_string())],
            )
            .await;
        let (header, bytes) = split_binary(response).await;
        let mut at = 0;
        let outputs = v2_outputs(&header, |o, datatype| {
            let size = o["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
            at += size;
            binary_values(&bytes[at - size..at], datatype)
        });
        assert_eq!(at, bytes.len(), "{what}: binary part");
        for c in &checks {
            check(c, &outputs[find(&outputs, &c.output, &what)].1, &what);
        }

        // V2 over gRPC, raw contents both ways.
        let what = format!("{label} (grpc)");
        let request = proto::ModelInferRequest {
            model_name: name.clone(),
            inputs: inputs
                .iter()
                .zip(&names)
                .map(|(input, n)| proto::model_infer_request::InferInputTensor {
                    name: n.clone(),
                    datatype: "FP32".into(),
                    shape: input.shape.iter().map(|&d| d as i64).collect(),
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: inputs
                .iter()
                .map(|input| input.data.iter().flat_map(|v| v.to_le_bytes()).collect())
                .collect(),
            ..Default::default()
        };
        let response = grpc
            .model_infer(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"))
            .into_inner();
        let outputs: Vec<(String, Got)> = response
            .outputs
            .iter()
            .zip(&response.raw_output_contents)
            .map(|(o, raw)| {
                let got = Got {
                    values: binary_values(raw, &o.datatype),
                    shape: Some(o.shape.iter().map(|&d| d as usize).collect()),
                    datatype: Some(o.datatype.clone()),
                };
                (o.name.clone(), got)
            })
            .collect();
        for c in &checks {
            check(c, &outputs[find(&outputs, &c.output, &what)].1, &what);
        }

        // TF Serving's :predict, rows; one input, so each instance is the row's value.
        let what = format!("{label} (tfserving)");
        assert_eq!(
            inputs.len(),
            1,
            "{what}: rows of several inputs are objects"
        );
        let input = &inputs[0];
        let instances: Vec<Value> = (0..input.shape[0])
            .map(|r| nested(input.row(r), &input.shape[1..]))
            .collect();
        let (status, answer) = server
            .post(
                &format!("/v1/models/{name}:predict"),
                &json!({"instances": instances}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{what}: {answer}");
        let predictions = answer["predictions"].as_array().unwrap();
        let output_names: Vec<&str> = meta["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        let outputs: Vec<(String, Got)> = meta["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let output = o["name"].as_str().unwrap();
                let datatype = o["datatype"].as_str().unwrap();
                let mut flat = Vec::new();
                for p in predictions {
                    let value = if output_names.len() == 1 {
                        p
                    } else {
                        &p[output]
                    };
                    flatten(value, &mut flat);
                }
                let got = Got {
                    values: json_values(&Value::Array(flat), datatype),
                    shape: None,
                    datatype: None,
                };
                (output.to_owned(), got)
            })
            .collect();
        for c in &checks {
            check(c, &outputs[find(&outputs, &c.output, &what)].1, &what);
        }
    }
    println!(
        "server: {} models over {} protocols",
        runs[0].len(),
        SURFACES.len()
    );
    server.stop().await;
}

/// Appends the scalars of a nested JSON list.
fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        scalar => out.push(scalar.clone()),
    }
}
