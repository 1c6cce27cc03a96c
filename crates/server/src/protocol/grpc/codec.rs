//! The gRPC codec: prost's, with one check in front of decoding a `ModelInferRequest`. prost
//! builds the whole message before the service sees it, and some wire forms take far more
//! memory decoded than sent (a 2-byte empty `bytes_contents` element becomes a 24-byte `Vec`, a
//! 1-byte varint in `shape` or `int64_contents` an 8-byte integer, an empty parameter a map
//! entry). So the message's wire bytes are walked first, allocating nothing, to add up what
//! prost would allocate and count its lists; past the limits it is refused with
//! `INVALID_ARGUMENT` before a byte of it is decoded.
//!
//! The walk is written here because no library reads protobuf's wire format without building
//! the message; it knows only the few fields of `ModelInferRequest` that can grow.

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::proto::ModelInferRequest;
use crate::codec::request::{MAX_PARAMETERS, MAX_RANK, MAX_TENSORS};

/// What a decoded `Vec`, `String` or map entry costs besides its elements.
const OVERHEAD: usize = 24;
/// What a decoded parameter (key, value, map slot) costs at least.
const PARAMETER: usize = 96;

/// Most bytes a decoded `ModelInferRequest` may take beyond its own size: the largest
/// `--max-request-bytes` of the servers in this process (one, outside tests); 0 until one
/// starts.
static DECODED_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Lets `ModelInferRequest`s decode to `bytes` (`--max-request-bytes`).
pub(crate) fn allow_decoded_bytes(bytes: usize) {
    DECODED_LIMIT.fetch_max(bytes, Ordering::Relaxed);
}

/// prost's codec, checking a `ModelInferRequest` before it is decoded.
#[derive(Debug, Clone)]
pub(crate) struct CheckedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        CheckedCodec(PhantomData)
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

/// prost's decoder, after [`check_infer_request`] for a `ModelInferRequest`; bytes that do not
/// decode are `INVALID_ARGUMENT`.
#[derive(Debug)]
pub(crate) struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default + 'static> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use bytes::Buf;
        if TypeId::of::<U>() == TypeId::of::<ModelInferRequest>()
            && buf.chunk().len() == buf.remaining()
        {
            let limit = DECODED_LIMIT.load(Ordering::Relaxed);
            if limit > 0 {
                check_infer_request(buf.chunk(), limit)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
            }
        }
        // prost's error is INTERNAL in tonic; bytes that are not the message are the
        // client's fault, so INVALID_ARGUMENT, as every other malformed request.
        self.0.decode(buf).map_err(|status| match status.code() {
            tonic::Code::Internal => Status::invalid_argument(format!(
                "the message is not valid protobuf: {}",
                status.message()
            )),
            _ => status,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// Why a `ModelInferRequest` is refused before decoding.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The bytes are not a protobuf message (prost would say so too).
    #[error("the message is not valid protobuf: {0}")]
    Malformed(&'static str),
    /// A list is longer than allowed.
    #[error("{what} has more than {limit} entries")]
    TooMany {
        /// The list.
        what: &'static str,
        /// Its limit.
        limit: usize,
    },
    /// The decoded message would take too much memory.
    #[error(
        "the request would take {bytes} bytes decoded, over the limit of {limit} bytes: its own size and --max-request-bytes more"
    )]
    TooLarge {
        /// Bytes prost would allocate.
        bytes: usize,
        /// The limit: the message's size and `--max-request-bytes`.
        limit: usize,
    },
}

/// Walks a `ModelInferRequest`'s wire bytes: counts its inputs, outputs, dimensions and
/// parameters, and adds up what decoding it would allocate, refusing past the limits: it may
/// take its own size and `limit` (`--max-request-bytes`) more.
pub(crate) fn check_infer_request(message: &[u8], limit: usize) -> Result<(), WireError> {
    let mut footprint = 0usize;
    let (mut inputs, mut outputs, mut parameters) = (0, 0, 0);
    for field in Fields(message) {
        let (number, value) = field?;
        match (number, value) {
            (4, Value::Len(_)) => {
                parameters += 1;
                footprint += PARAMETER;
            }
            (5, Value::Len(input)) => {
                inputs += 1;
                footprint += OVERHEAD * 4 + input_footprint(input)?;
            }
            (6, Value::Len(output)) => {
                outputs += 1;
                footprint += OVERHEAD * 2 + output.len() + map_footprint(output, 2)?;
            }
            (7, Value::Len(raw)) => footprint += OVERHEAD + raw.len(),
            (_, Value::Len(bytes)) => footprint += bytes.len(),
            _ => {}
        }
    }
    bounded("inputs", inputs, MAX_TENSORS)?;
    bounded("outputs", outputs, MAX_TENSORS)?;
    bounded("parameters", parameters, MAX_PARAMETERS)?;
    let limit = limit.saturating_add(message.len());
    if footprint > limit {
        return Err(WireError::TooLarge {
            bytes: footprint,
            limit,
        });
    }
    Ok(())
}

fn bounded(what: &'static str, count: usize, limit: usize) -> Result<(), WireError> {
    if count > limit {
        return Err(WireError::TooMany { what, limit });
    }
    Ok(())
}

/// What an `InferInputTensor` decodes to, beyond its struct.
fn input_footprint(input: &[u8]) -> Result<usize, WireError> {
    let mut footprint = 0;
    let mut rank = 0;
    for field in Fields(input) {
        match field? {
            // shape: packed varints, or one unpacked.
            (3, Value::Len(packed)) => rank += varints(packed),
            (3, Value::Varint) => rank += 1,
            (5, Value::Len(contents)) => footprint += contents_footprint(contents)?,
            (_, Value::Len(bytes)) => footprint += bytes.len(),
            _ => {}
        }
    }
    bounded("an input's shape", rank, MAX_RANK)?;
    Ok(footprint + 8 * rank + map_footprint(input, 4)?)
}

/// What the parameters map (field `number`) of a message decodes to.
fn map_footprint(message: &[u8], number: u32) -> Result<usize, WireError> {
    let mut entries = 0;
    for field in Fields(message) {
        if let (n, Value::Len(_)) = field?
            && n == number
        {
            entries += 1;
        }
    }
    bounded("parameters", entries, MAX_PARAMETERS)?;
    Ok(entries * PARAMETER)
}

/// What an `InferTensorContents` decodes to: each `bytes_contents` element a `Vec`, each
/// numeric element its type's size however few bytes its varint took.
fn contents_footprint(contents: &[u8]) -> Result<usize, WireError> {
    let mut footprint = 0;
    for field in Fields(contents) {
        footprint += match field? {
            // bool, int32, uint32 (4 bytes; bool 1), int64, uint64 (8): packed varints.
            (1, Value::Len(packed)) => varints(packed),
            (2 | 4, Value::Len(packed)) => 4 * varints(packed),
            (3 | 5, Value::Len(packed)) => 8 * varints(packed),
            (1, Value::Varint) => 1,
            (2 | 4, Value::Varint) => 4,
            (3 | 5, Value::Varint) => 8,
            (8, Value::Len(bytes)) => OVERHEAD + bytes.len(),
            (_, Value::Len(bytes)) => bytes.len(),
            (_, Value::Fixed(n)) => n,
            (_, Value::Varint) => 8,
        };
    }
    Ok(footprint)
}

/// The number of varints in packed bytes: the bytes that end one (high bit clear).
fn varints(packed: &[u8]) -> usize {
    packed.iter().filter(|&&b| b & 0x80 == 0).count()
}

/// One field's value on the wire.
enum Value<'a> {
    Varint,
    Fixed(usize),
    Len(&'a [u8]),
}

/// The fields of a message's wire bytes: (number, value).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let key = varint(&mut self.0)?;
            let number =
                u32::try_from(key >> 3).map_err(|_| WireError::Malformed("field number"))?;
            let value = match key & 7 {
                0 => {
                    varint(&mut self.0)?;
                    Value::Varint
                }
                1 => Value::Fixed(take(&mut self.0, 8)?.len()),
                5 => Value::Fixed(take(&mut self.0, 4)?.len()),
                2 => {
                    let len = usize::try_from(varint(&mut self.0)?)
                        .map_err(|_| WireError::Malformed("length"))?;
                    Value::Len(take(&mut self.0, len)?)
                }
                _ => return Err(WireError::Malformed("wire type")),
            };
            Ok((number, value))
        })();
        if field.is_err() {
            self.0 = &[];
        }
        Some(field)
    }
}

fn varint(bytes: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = bytes
            .split_first()
            .ok_or(WireError::Malformed("varint cut off"))?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::Malformed("varint too long"))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], WireError> {
    if n > bytes.len() {
        return Err(WireError::Malformed("field cut off"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::grpc::proto;

    fn input(
        shape: Vec<i64>,
        contents: proto::InferTensorContents,
    ) -> proto::model_infer_request::InferInputTensor {
        proto::model_infer_request::InferInputTensor {
            name: "x".into(),
            datatype: "BYTES".into(),
            shape,
            contents: Some(contents),
            ..Default::default()
        }
    }

    fn request(inputs: Vec<proto::model_infer_request::InferInputTensor>) -> Vec<u8> {
        proto::ModelInferRequest {
            model_name: "m".into(),
            inputs,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn ordinary_requests_pass() {
        let floats = proto::InferTensorContents {
            fp32_contents: vec![1.0; 1000],
            ..Default::default()
        };
        let message = request(vec![input(vec![250, 4], floats)]);
        assert_eq!(check_infer_request(&message, 1 << 20), Ok(()));
        // Small integers take more decoded than sent, within the limit.
        let ints = proto::InferTensorContents {
            int64_contents: vec![1; 1000],
            ..Default::default()
        };
        assert_eq!(
            check_infer_request(&request(vec![input(vec![1000], ints)]), 1 << 20),
            Ok(())
        );
    }

    #[test]
    fn strings_that_decode_to_many_times_their_size_are_refused() {
        // 100,000 empty strings: about 200 kB sent, 2.4 MB as one Vec each.
        let strings = proto::InferTensorContents {
            bytes_contents: vec![Vec::new(); 100_000],
            ..Default::default()
        };
        let message = request(vec![input(vec![100_000], strings)]);
        assert!(message.len() < 250_000);
        let err = check_infer_request(&message, 1 << 20).unwrap_err();
        assert!(
            matches!(err, WireError::TooLarge { bytes, .. } if bytes > 2_400_000),
            "{err}"
        );
        assert!(err.to_string().contains("--max-request-bytes"));
    }

    #[test]
    fn lists_are_bounded_and_broken_messages_refused() {
        let message = request(vec![input(vec![1; MAX_RANK + 1], Default::default())]);
        assert_eq!(
            check_infer_request(&message, 1 << 20),
            Err(WireError::TooMany {
                what: "an input's shape",
                limit: MAX_RANK
            })
        );
        let many = vec![input(vec![1], Default::default()); MAX_TENSORS + 1];
        assert!(matches!(
            check_infer_request(&request(many), 1 << 30),
            Err(WireError::TooMany { what: "inputs", .. })
        ));
        let mut parameters = std::collections::HashMap::new();
        for i in 0..=MAX_PARAMETERS {
            parameters.insert(format!("p{i}"), proto::InferParameter::default());
        }
        let message = proto::ModelInferRequest {
            parameters,
            ..Default::default()
        }
        .encode_to_vec();
        assert!(matches!(
            check_infer_request(&message, 1 << 30),
            Err(WireError::TooMany {
                what: "parameters",
                ..
            })
        ));
        let message = request(vec![input(vec![4], Default::default())]);
        assert!(matches!(
            check_infer_request(&message[..message.len() - 1], 1 << 20),
            Err(WireError::Malformed(_))
        ));
    }
}
