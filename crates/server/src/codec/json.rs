//! JSON `data` of a V2 tensor: typed parsing of flat or nested arrays straight into a typed
//! buffer (no intermediate `serde_json::Value`). The serialising side is
//! [`ferroserve_core::DataJson`].
//!
//! Written by hand because the element type is only known from the sibling `datatype` field, so
//! the `data` array is kept as raw JSON and parsed once the datatype is read.

use std::fmt;

use ferroserve_core::{ByteStrings, DataType, TensorData};
use half::{bf16, f16};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::ProtocolError;

/// Parses `data` of an input called `tensor` as elements of `datatype`, flattening nesting.
/// `capacity` is the element count the shape implies (a hint; the count is checked later).
pub(crate) fn parse_data(
    tensor: &str,
    datatype: DataType,
    raw: &RawValue,
    capacity: usize,
) -> Result<TensorData, ProtocolError> {
    fn run<T: Element>(raw: &RawValue, capacity: usize) -> Result<Vec<T>, serde_json::Error> {
        let mut out = Vec::with_capacity(capacity);
        let mut de = serde_json::Deserializer::from_str(raw.get());
        Flatten { out: &mut out }.deserialize(&mut de)?;
        Ok(out)
    }
    fn strings(raw: &RawValue, capacity: usize) -> Result<ByteStrings, serde_json::Error> {
        // The JSON text bounds the bytes: one buffer, sized once.
        let mut out = ByteStrings::with_capacity(capacity, raw.get().len());
        let mut de = serde_json::Deserializer::from_str(raw.get());
        Flatten { out: &mut out }.deserialize(&mut de)?;
        Ok(out)
    }
    let wrap = |e: serde_json::Error| {
        // The message is ours; the position is relative to the `data` snippet, so drop it.
        let text = e.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
        ProtocolError::tensor(tensor, format!("data: {text}"))
    };
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(run(raw, capacity).map_err(wrap)?),
        DataType::Uint8 => TensorData::U8(run(raw, capacity).map_err(wrap)?),
        DataType::Uint16 => TensorData::U16(run(raw, capacity).map_err(wrap)?),
        DataType::Uint32 => TensorData::U32(run(raw, capacity).map_err(wrap)?),
        DataType::Uint64 => TensorData::U64(run(raw, capacity).map_err(wrap)?),
        DataType::Int8 => TensorData::I8(run(raw, capacity).map_err(wrap)?),
        DataType::Int16 => TensorData::I16(run(raw, capacity).map_err(wrap)?),
        DataType::Int32 => TensorData::I32(run(raw, capacity).map_err(wrap)?),
        DataType::Int64 => TensorData::I64(run(raw, capacity).map_err(wrap)?),
        DataType::Fp16 => TensorData::F16(run(raw, capacity).map_err(wrap)?),
        DataType::Bf16 => TensorData::Bf16(run(raw, capacity).map_err(wrap)?),
        DataType::Fp32 => TensorData::F32(run(raw, capacity).map_err(wrap)?),
        DataType::Fp64 => TensorData::F64(run(raw, capacity).map_err(wrap)?),
        DataType::Bytes => TensorData::Bytes(strings(raw, capacity).map_err(wrap)?),
    })
}

/// An element type that JSON scalars convert into; `None` = that scalar is not accepted.
/// Shared with the TensorFlow Serving decoders, so both APIs convert scalars alike.
pub(crate) trait Element: Sized {
    /// The V2 name, for messages.
    const NAME: &'static str;
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

macro_rules! integer_element {
    ($t:ty, $name:literal) => {
        impl Element for $t {
            const NAME: &'static str = $name;
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Option<Self> {
                // Accept integral floats (`3.0`), which some JSON writers produce for integers.
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 {
                    Some(v as $t)
                } else {
                    None
                }
            }
        }
    };
}
integer_element!(u8, "UINT8");
integer_element!(u16, "UINT16");
integer_element!(u32, "UINT32");
integer_element!(u64, "UINT64");
integer_element!(i8, "INT8");
integer_element!(i16, "INT16");
integer_element!(i32, "INT32");
integer_element!(i64, "INT64");

/// Non-finite floats have no JSON number form; accept the tokens TF Serving and numpy write.
fn non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A float type's elements: any JSON number that fits, and the non-finite tokens. A finite
/// number beyond the type's range (`1e39` as FP32, `70000` as FP16) is refused rather than
/// turned into infinity.
macro_rules! float_element {
    ($t:ty, $name:literal, $from:expr) => {
        impl Element for $t {
            const NAME: &'static str = $name;
            fn from_i64(v: i64) -> Option<Self> {
                <Self as Element>::from_f64(v as f64)
            }
            fn from_u64(v: u64) -> Option<Self> {
                <Self as Element>::from_f64(v as f64)
            }
            fn from_f64(v: f64) -> Option<Self> {
                let x: $t = $from(v);
                (!v.is_finite() || x.is_finite()).then_some(x)
            }
            fn from_str(s: &str) -> Option<Self> {
                non_finite(s).map($from)
            }
        }
    };
}
float_element!(f32, "FP32", |v: f64| v as f32);
float_element!(f64, "FP64", |v: f64| v);
float_element!(f16, "FP16", f16::from_f64);
float_element!(bf16, "BF16", bf16::from_f64);

impl Element for bool {
    const NAME: &'static str = "BOOL";
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

/// Where [`Flatten`] puts the scalars it reads: a `Vec` of an [`Element`], or the one buffer of
/// a BYTES tensor. Each `push_*` answers whether the scalar was accepted.
trait Elements {
    /// The V2 name of the element type, for messages.
    const NAME: &'static str;
    fn count(&self) -> usize;
    fn push_bool(&mut self, v: bool) -> bool;
    fn push_i64(&mut self, v: i64) -> bool;
    fn push_u64(&mut self, v: u64) -> bool;
    fn push_f64(&mut self, v: f64) -> bool;
    fn push_str(&mut self, v: &str) -> bool;
}

impl<T: Element> Elements for Vec<T> {
    const NAME: &'static str = T::NAME;
    fn count(&self) -> usize {
        self.len()
    }
    fn push_bool(&mut self, v: bool) -> bool {
        T::from_bool(v).map(|x| self.push(x)).is_some()
    }
    fn push_i64(&mut self, v: i64) -> bool {
        T::from_i64(v).map(|x| self.push(x)).is_some()
    }
    fn push_u64(&mut self, v: u64) -> bool {
        T::from_u64(v).map(|x| self.push(x)).is_some()
    }
    fn push_f64(&mut self, v: f64) -> bool {
        T::from_f64(v).map(|x| self.push(x)).is_some()
    }
    fn push_str(&mut self, v: &str) -> bool {
        T::from_str(v).map(|x| self.push(x)).is_some()
    }
}

impl Elements for ByteStrings {
    const NAME: &'static str = "BYTES";
    fn count(&self) -> usize {
        self.len()
    }
    fn push_bool(&mut self, _: bool) -> bool {
        false
    }
    fn push_i64(&mut self, _: i64) -> bool {
        false
    }
    fn push_u64(&mut self, _: u64) -> bool {
        false
    }
    fn push_f64(&mut self, _: f64) -> bool {
        false
    }
    fn push_str(&mut self, v: &str) -> bool {
        self.push(v);
        true
    }
}

/// Appends every scalar of a (possibly nested) JSON array to `out`.
struct Flatten<'a, O> {
    out: &'a mut O,
}

impl<'de, O: Elements> DeserializeSeed<'de> for Flatten<'_, O> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<O: Elements> Flatten<'_, O> {
    fn push<E: de::Error>(self, accepted: bool, got: fmt::Arguments<'_>) -> Result<(), E> {
        if accepted {
            Ok(())
        } else {
            Err(E::custom(format_args!(
                "element {} is {got}, which is not a valid {} value",
                self.out.count(),
                O::NAME
            )))
        }
    }
}

/// The visitor methods of scalar JSON values: each pushes the value into the buffer and
/// refuses one the datatype does not take.
macro_rules! visit_scalars {
    ($($visit:ident($t:ty) => $push:ident,)*) => {
        $(
            fn $visit<E: de::Error>(self, v: $t) -> Result<(), E> {
                let accepted = self.out.$push(v);
                self.push(accepted, format_args!("{v}"))
            }
        )*
    };
}

impl<'de, O: Elements> Visitor<'de> for Flatten<'_, O> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {} values", O::NAME)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        while seq.next_element_seed(Flatten { out: &mut *out })?.is_some() {}
        Ok(())
    }

    visit_scalars! {
        visit_bool(bool) => push_bool,
        visit_i64(i64) => push_i64,
        visit_u64(u64) => push_u64,
        visit_f64(f64) => push_f64,
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let accepted = self.out.push_str(v);
        self.push(accepted, format_args!("the string {v:?}"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.push(false, format_args!("null"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(dt: DataType, text: &str) -> Result<TensorData, ProtocolError> {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        parse_data("x", dt, &raw, 0)
    }

    #[test]
    fn flattens_nested_arrays() {
        assert_eq!(
            parse(DataType::Fp32, "[[1, 2.5], [3, 4]]").unwrap(),
            TensorData::F32(vec![1.0, 2.5, 3.0, 4.0])
        );
        assert_eq!(
            parse(DataType::Int64, "[1, [2, [3]]]").unwrap(),
            TensorData::I64(vec![1, 2, 3])
        );
    }

    #[test]
    fn parses_every_datatype() {
        assert_eq!(
            parse(DataType::Bool, "[true,false]").unwrap(),
            TensorData::Bool(vec![true, false])
        );
        assert_eq!(
            parse(DataType::Uint8, "[255]").unwrap(),
            TensorData::U8(vec![255])
        );
        assert_eq!(
            parse(DataType::Int8, "[-128]").unwrap(),
            TensorData::I8(vec![-128])
        );
        assert_eq!(
            parse(DataType::Uint64, "[18446744073709551615]").unwrap(),
            TensorData::U64(vec![u64::MAX])
        );
        assert_eq!(
            parse(DataType::Fp64, "[0.1]").unwrap(),
            TensorData::F64(vec![0.1])
        );
        assert_eq!(
            parse(DataType::Fp16, "[0.5]").unwrap(),
            TensorData::F16(vec![f16::from_f32(0.5)])
        );
        assert_eq!(
            parse(DataType::Bytes, r#"["ab", "c"]"#).unwrap(),
            TensorData::Bytes(vec![b"ab".to_vec(), b"c".to_vec()].into())
        );
        let TensorData::F32(v) = parse(DataType::Fp32, r#"["NaN", "-inf"]"#).unwrap() else {
            panic!()
        };
        assert!(v[0].is_nan() && v[1] == f32::NEG_INFINITY);
    }

    #[test]
    fn refuses_finite_floats_past_the_type_instead_of_infinity() {
        for (datatype, body) in [
            (DataType::Fp32, "[1.0, 1e39]"),
            (DataType::Fp32, "[1.0, -1e39]"),
            (DataType::Fp16, "[1.0, 70000]"),
            (DataType::Bf16, "[1.0, 1e39]"),
        ] {
            let err = parse(datatype, body).unwrap_err().to_string();
            assert!(
                err.contains("element 1") && err.contains(datatype.name()),
                "{err}"
            );
        }
        let TensorData::F32(v) = parse(DataType::Fp32, "[3.4e38, 1e-50]").unwrap() else {
            panic!()
        };
        assert_eq!(v, [3.4e38, 0.0]);
    }

    #[test]
    fn rejects_values_outside_the_type_naming_the_element() {
        let err = parse(DataType::Uint8, "[1, 256]").unwrap_err().to_string();
        assert!(
            err.contains("input 'x'") && err.contains("element 1") && err.contains("UINT8"),
            "{err}"
        );
        assert!(parse(DataType::Int32, "[1.5]").is_err());
        assert!(parse(DataType::Bool, "[1]").is_err());
        assert!(parse(DataType::Fp32, r#"["one"]"#).is_err());
        assert!(parse(DataType::Fp32, "[null]").is_err());
        assert!(parse(DataType::Fp32, "{\"a\": 1}").is_err());
    }
}
