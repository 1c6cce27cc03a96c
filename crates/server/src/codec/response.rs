//! Encoding a V2 inference response: JSON, or a JSON header followed by the bytes of each
//! binary output in the order the outputs are listed.

use ferroserve_core::{DataJson, Tensor};
use serde::Serialize;

use super::OutputForm;

/// A response body, and the length of its JSON part when a binary part follows.
#[derive(Debug)]
pub(crate) struct EncodedResponse {
    /// The whole body.
    pub body: Vec<u8>,
    /// `Some(len)` when binary outputs follow the JSON header.
    pub header_length: Option<usize>,
}

#[derive(Serialize)]
struct Response<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    parameters: &'a serde_json::Map<String, serde_json::Value>,
    outputs: Vec<TensorJson<'a>>,
}

/// A tensor in the V2 JSON form: its data inline, or, for a binary output, its byte size in
/// `parameters` and its bytes after the JSON header.
#[derive(Serialize)]
pub(crate) struct TensorJson<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<DataJson<'a>>,
}

impl<'a> TensorJson<'a> {
    /// `tensor`, its bytes sent after the JSON header when `binary`, else as JSON data.
    pub(crate) fn new(tensor: &'a Tensor, binary: bool) -> Self {
        TensorJson {
            name: &tensor.name,
            datatype: tensor.datatype().name(),
            shape: &tensor.shape,
            parameters: binary.then(|| BinaryParameters {
                binary_data_size: tensor.data().byte_size(),
            }),
            data: (!binary).then(|| DataJson(tensor.data())),
        }
    }
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

/// Encodes `outputs`, each in the form `form` gives it, and the response `parameters`.
pub(crate) fn encode_response(
    model_name: &str,
    model_version: u64,
    id: Option<&str>,
    outputs: &[Tensor],
    form: &OutputForm,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> EncodedResponse {
    let response = Response {
        model_name,
        model_version: model_version.to_string(),
        id: id.filter(|id| !id.is_empty()),
        parameters,
        outputs: outputs
            .iter()
            .enumerate()
            .map(|(ix, t)| TensorJson::new(t, form.binary(ix)))
            .collect(),
    };
    let mut body = serde_json::to_vec(&response).expect("a response always serialises");
    if !(0..outputs.len()).any(|ix| form.binary(ix)) {
        return EncodedResponse {
            body,
            header_length: None,
        };
    }
    let header_length = body.len();
    for (_, t) in outputs
        .iter()
        .enumerate()
        .filter(|(ix, _)| form.binary(*ix))
    {
        t.data().write_binary(&mut body);
    }
    EncodedResponse {
        body,
        header_length: Some(header_length),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::TensorData;

    #[test]
    fn json_response_echoes_id_and_carries_data() {
        let t = Tensor::new("y", vec![1, 2], TensorData::F32(vec![0.5, 0.25])).unwrap();
        let r = encode_response(
            "m",
            3,
            Some("abc"),
            &[t],
            &OutputForm::json(),
            &Default::default(),
        );
        assert_eq!(r.header_length, None);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"model_name":"m","model_version":"3","id":"abc","outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"data":[0.5,0.25]}]}"#
        );
    }

    #[test]
    fn binary_outputs_follow_the_header_in_order() {
        let a = Tensor::new("a", vec![1], TensorData::I64(vec![7])).unwrap();
        let b = Tensor::new("b", vec![1], TensorData::U8(vec![9])).unwrap();
        let c = Tensor::new("c", vec![1], TensorData::I32(vec![1])).unwrap();
        let r = encode_response(
            "m",
            1,
            None,
            &[a, c, b],
            &OutputForm::new(vec![Some(true), Some(false), None], true),
            &Default::default(),
        );
        let len = r.header_length.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&r.body[..len]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert_eq!(header["outputs"][1]["data"][0], 1);
        assert_eq!(&r.body[len..], &[7, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert!(header.get("id").is_none());
    }
}
