//! The binary tensor data extension's elements read back: little-endian, row-major, native
//! size; BOOL one byte (0/1); each BYTES element a 4-byte little-endian length then its bytes.
//! The writing side is [`TensorData::write_binary`], in core.

use ferroserve_core::{ByteStrings, DataType, TensorData};
use half::{bf16, f16};

use super::ProtocolError;

/// Decodes `bytes` as the elements of an input called `tensor`, which should hold `count`
/// elements of `datatype`.
pub(crate) fn decode(
    tensor: &str,
    datatype: DataType,
    bytes: &[u8],
    count: usize,
) -> Result<TensorData, ProtocolError> {
    let Some(size) = datatype.size() else {
        return decode_bytes(tensor, bytes, count).map(TensorData::Bytes);
    };
    if bytes.len() != count * size {
        return Err(ProtocolError::tensor(
            tensor,
            format!(
                "binary_data_size is {} bytes but shape and datatype {datatype} need {} ({count} elements x {size} bytes)",
                bytes.len(),
                count * size
            ),
        ));
    }
    macro_rules! le {
        ($t:ty, $n:literal) => {
            bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    other => Err(ProtocolError::tensor(
                        tensor,
                        format!("BOOL element {i} is byte {other}; expected 0 or 1"),
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 => TensorData::U8(bytes.to_vec()),
        DataType::Int8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::Uint16 => TensorData::U16(le!(u16, 2)),
        DataType::Int16 => TensorData::I16(le!(i16, 2)),
        DataType::Fp16 => TensorData::F16(le!(f16, 2)),
        DataType::Bf16 => TensorData::Bf16(le!(bf16, 2)),
        DataType::Uint32 => TensorData::U32(le!(u32, 4)),
        DataType::Int32 => TensorData::I32(le!(i32, 4)),
        DataType::Fp32 => TensorData::F32(le!(f32, 4)),
        DataType::Uint64 => TensorData::U64(le!(u64, 8)),
        DataType::Int64 => TensorData::I64(le!(i64, 8)),
        DataType::Fp64 => TensorData::F64(le!(f64, 8)),
        DataType::Bytes => unreachable!("BYTES has no fixed size"),
    })
}

/// BYTES elements in the V2 layout, checked to be exactly `count`.
fn decode_bytes(tensor: &str, bytes: &[u8], count: usize) -> Result<ByteStrings, ProtocolError> {
    ByteStrings::from_length_prefixed(bytes, count).map_err(|e| {
        ProtocolError::tensor(
            tensor,
            format!("binary BYTES data is not {count} elements (a 4-byte little-endian length before each): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &TensorData) {
        let mut bytes = Vec::new();
        data.write_binary(&mut bytes);
        assert_eq!(bytes.len(), data.byte_size());
        assert_eq!(
            &decode("x", data.datatype(), &bytes, data.len()).unwrap(),
            data
        );
    }

    #[test]
    fn round_trips_every_datatype() {
        round_trip(&TensorData::Bool(vec![true, false]));
        round_trip(&TensorData::U8(vec![0, 255]));
        round_trip(&TensorData::I8(vec![-1, 1]));
        round_trip(&TensorData::U16(vec![65535]));
        round_trip(&TensorData::I16(vec![-2]));
        round_trip(&TensorData::F16(vec![f16::from_f32(1.5)]));
        round_trip(&TensorData::Bf16(vec![bf16::from_f32(-3.0)]));
        round_trip(&TensorData::U32(vec![7]));
        round_trip(&TensorData::I32(vec![-7]));
        round_trip(&TensorData::F32(vec![0.1, f32::MAX]));
        round_trip(&TensorData::U64(vec![u64::MAX]));
        round_trip(&TensorData::I64(vec![i64::MIN]));
        round_trip(&TensorData::F64(vec![1e-300]));
        round_trip(&TensorData::Bytes(
            vec![b"abc".to_vec(), vec![], vec![0, 1]].into(),
        ));
    }

    #[test]
    fn fp32_is_little_endian() {
        let mut bytes = Vec::new();
        TensorData::F32(vec![1.0]).write_binary(&mut bytes);
        assert_eq!(bytes, [0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn rejects_size_mismatch_and_bad_prefixes() {
        let err = decode("x", DataType::Fp32, &[0; 7], 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'x'") && err.contains("7") && err.contains("8"),
            "{err}"
        );
        assert!(decode("x", DataType::Bytes, &[5, 0, 0, 0, b'a'], 1).is_err());
        assert!(decode("x", DataType::Bytes, &[0, 0], 1).is_err());
        assert!(decode("x", DataType::Bytes, &[0, 0, 0, 0], 2).is_err());
        assert!(decode("x", DataType::Bool, &[2], 1).is_err());
    }
}
