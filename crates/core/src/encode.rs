//! A tensor buffer's two wire forms, written out: the binary form (little-endian, row-major,
//! native size; BOOL one byte; each BYTES element a 4-byte little-endian length then its bytes)
//! and a flat JSON array. The V2 and gRPC front-ends send them, the payload log writes the JSON
//! form, and the prediction cache keys answers by the binary form.

use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::TensorData;

impl TensorData {
    /// Appends the binary form of the elements to `out` ([`TensorData::byte_size`] bytes).
    pub fn write_binary(&self, out: &mut Vec<u8>) {
        macro_rules! le {
            ($v:expr) => {
                for x in $v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            };
        }
        match self {
            TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
            TensorData::U8(v) => out.extend_from_slice(v),
            TensorData::I8(v) => out.extend(v.iter().map(|&b| b.to_le_bytes()[0])),
            TensorData::U16(v) => le!(v),
            TensorData::I16(v) => le!(v),
            TensorData::F16(v) => le!(v),
            TensorData::Bf16(v) => le!(v),
            TensorData::U32(v) => le!(v),
            TensorData::I32(v) => le!(v),
            TensorData::F32(v) => le!(v),
            TensorData::U64(v) => le!(v),
            TensorData::I64(v) => le!(v),
            TensorData::F64(v) => le!(v),
            TensorData::Bytes(v) => {
                // An element of 4 GiB or more cannot be written in this layout at all; request
                // and message limits keep every tensor far below it.
                v.write_length_prefixed(out).expect(
                    "BYTES elements are under 4 GiB: request and message limits keep them far smaller",
                );
            }
        }
    }
}

/// Serialises a buffer as a flat JSON array: FP16/BF16 as numbers, BYTES as strings (invalid
/// UTF-8 replaced).
#[derive(Debug)]
pub struct DataJson<'a>(pub &'a TensorData);

impl Serialize for DataJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn seq<S: Serializer, T, U: Serialize>(
            s: S,
            v: &[T],
            f: impl Fn(&T) -> U,
        ) -> Result<S::Ok, S::Error> {
            let mut out = s.serialize_seq(Some(v.len()))?;
            for x in v {
                out.serialize_element(&f(x))?;
            }
            out.end()
        }
        match self.0 {
            TensorData::F16(v) => seq(s, v, |x| x.to_f32()),
            TensorData::Bf16(v) => seq(s, v, |x| x.to_f32()),
            TensorData::Bytes(v) => {
                let mut out = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    out.serialize_element(&String::from_utf8_lossy(x))?;
                }
                out.end()
            }
            TensorData::Bool(v) => v.serialize(s),
            TensorData::U8(v) => v.serialize(s),
            TensorData::U16(v) => v.serialize(s),
            TensorData::U32(v) => v.serialize(s),
            TensorData::U64(v) => v.serialize(s),
            TensorData::I8(v) => v.serialize(s),
            TensorData::I16(v) => v.serialize(s),
            TensorData::I32(v) => v.serialize(s),
            TensorData::I64(v) => v.serialize(s),
            TensorData::F32(v) => v.serialize(s),
            TensorData::F64(v) => v.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn binary_form_is_little_endian_and_sized() {
        let mut bytes = Vec::new();
        TensorData::F32(vec![1.0]).write_binary(&mut bytes);
        assert_eq!(bytes, [0, 0, 0x80, 0x3f]);
        for data in [
            TensorData::Bool(vec![true, false]),
            TensorData::I8(vec![-1]),
            TensorData::F16(vec![f16::from_f32(1.5)]),
            TensorData::Bf16(vec![bf16::from_f32(-3.0)]),
            TensorData::I64(vec![i64::MIN]),
            TensorData::Bytes(vec![b"abc".to_vec(), vec![]].into()),
        ] {
            let mut out = Vec::new();
            data.write_binary(&mut out);
            assert_eq!(out.len(), data.byte_size(), "{data:?}");
        }
    }

    #[test]
    fn json_form_is_flat() {
        let text = serde_json::to_string(&DataJson(&TensorData::F32(vec![0.5, 1.0]))).unwrap();
        assert_eq!(text, "[0.5,1.0]");
        let bytes =
            serde_json::to_string(&DataJson(&TensorData::Bytes(vec![b"hi".to_vec()].into())))
                .unwrap();
        assert_eq!(bytes, "[\"hi\"]");
    }
}
