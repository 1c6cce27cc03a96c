//! Shape and selection operators of preprocessing graphs: `Concat`, `Reshape`, `Gather`, and
//! `ai.onnx.ml`'s `ArrayFeatureExtractor` and `OneHotEncoder`. Element types: FP32, FP64,
//! INT64 (and BYTES where only copied).

use ferroserve_core::{ByteStrings, Tensor, TensorData};

use super::{Op, Output, input};
use crate::onnxml::attributes::Attributes;

/// An int64 tensor's values (indices, shapes).
fn int64s(t: &Tensor) -> Result<&[i64], String> {
    match t.data() {
        TensorData::I64(v) => Ok(v),
        other => Err(format!(
            "'{}' must be INT64, got {}",
            t.name,
            other.datatype()
        )),
    }
}

/// A possibly negative axis of a rank-`rank` tensor.
fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
}

/// Picks, along `axis` of `shape`, the entries `picks` (already in range): the data as
/// `outer × axis × inner` blocks.
fn take(data: &TensorData, shape: &[usize], axis: usize, picks: &[usize]) -> TensorData {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let along = shape[axis];
    macro_rules! pick {
        ($v:expr, $variant:ident) => {{
            let mut out = Vec::with_capacity(outer * picks.len() * inner);
            for o in 0..outer {
                for &p in picks {
                    let start = (o * along + p) * inner;
                    out.extend_from_slice(&$v[start..start + inner]);
                }
            }
            TensorData::$variant(out)
        }};
    }
    match data {
        TensorData::F32(v) => pick!(v, F32),
        TensorData::F64(v) => pick!(v, F64),
        TensorData::I64(v) => pick!(v, I64),
        TensorData::I32(v) => pick!(v, I32),
        TensorData::Bytes(v) => {
            let mut out = ByteStrings::with_capacity(outer * picks.len() * inner, 0);
            for o in 0..outer {
                for &p in picks {
                    let start = (o * along + p) * inner;
                    out.extend_from_range(v, start, start + inner);
                }
            }
            TensorData::Bytes(out)
        }
        other => TensorData::with_capacity(other.datatype(), 0),
    }
}

/// Checks and normalises indices into a dimension of size `size`.
fn indices(values: &[i64], size: usize) -> Result<Vec<usize>, String> {
    values
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + size as i64 } else { i };
            usize::try_from(j)
                .ok()
                .filter(|&j| j < size)
                .ok_or_else(|| format!("index {i} is out of range for a dimension of {size}"))
        })
        .collect()
}

/// `ArrayFeatureExtractor`: columns of the last axis.
#[derive(Debug)]
pub(crate) struct ArrayFeatureExtractor;

impl Op for ArrayFeatureExtractor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = input(inputs, 0)?;
        let picks = indices(
            int64s(input(inputs, 1)?)?,
            *x.shape.last().ok_or("X is a scalar")?,
        )?;
        let last = x.shape.len() - 1;
        let mut shape = x.shape.clone();
        shape[last] = picks.len();
        Ok(vec![(shape, take(x.data(), &x.shape, last, &picks))])
    }
}

/// `Gather` along `axis` with 0-D or 1-D indices.
#[derive(Debug)]
pub(crate) struct Gather {
    axis: i64,
}

impl Gather {
    pub(crate) fn new(a: Attributes<'_>) -> Gather {
        Gather {
            axis: a.int("axis", 0),
        }
    }
}

impl Op for Gather {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = input(inputs, 0)?;
        let index_tensor = input(inputs, 1)?;
        if index_tensor.shape.len() > 1 {
            return Err("Gather with indices of rank > 1 is not supported".into());
        }
        let axis = axis(self.axis, x.shape.len())?;
        let picks = indices(int64s(index_tensor)?, x.shape[axis])?;
        let mut shape = x.shape.clone();
        if index_tensor.shape.is_empty() {
            shape.remove(axis);
        } else {
            shape[axis] = picks.len();
        }
        Ok(vec![(shape, take(x.data(), &x.shape, axis, &picks))])
    }
}

/// `Concat` along `axis`.
#[derive(Debug)]
pub(crate) struct Concat {
    axis: i64,
}

impl Concat {
    pub(crate) fn new(a: Attributes<'_>) -> Concat {
        Concat {
            axis: a.int("axis", 0),
        }
    }
}

impl Op for Concat {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let parts: Vec<&Tensor> = inputs.iter().copied().flatten().collect();
        let first = parts.first().ok_or("Concat has no inputs")?;
        let rank = first.shape.len();
        let axis = axis(self.axis, rank)?;
        let mut shape = first.shape.clone();
        shape[axis] = 0;
        for p in &parts {
            let same_other_dims = p.shape.len() == rank
                && (0..rank).all(|d| d == axis || p.shape[d] == first.shape[d]);
            if !same_other_dims || p.datatype() != first.datatype() {
                return Err(format!(
                    "'{}' {:?} {} cannot be joined to '{}' {:?} {} on axis {axis}",
                    p.name,
                    p.shape,
                    p.datatype(),
                    first.name,
                    first.shape,
                    first.datatype()
                ));
            }
            shape[axis] += p.shape[axis];
        }
        let outer: usize = first.shape[..axis].iter().product();
        macro_rules! join {
            ($variant:ident) => {{
                let mut out = Vec::new();
                for o in 0..outer {
                    for p in &parts {
                        let TensorData::$variant(v) = p.data() else {
                            unreachable!()
                        };
                        let block = v.len() / outer.max(1);
                        out.extend_from_slice(&v[o * block..(o + 1) * block]);
                    }
                }
                TensorData::$variant(out)
            }};
        }
        let data = match first.data() {
            TensorData::F32(_) => join!(F32),
            TensorData::F64(_) => join!(F64),
            TensorData::I64(_) => join!(I64),
            TensorData::Bytes(_) => {
                let mut out = ByteStrings::new();
                for o in 0..outer {
                    for p in &parts {
                        let TensorData::Bytes(v) = p.data() else {
                            unreachable!()
                        };
                        let block = v.len() / outer.max(1);
                        out.extend_from_range(v, o * block, (o + 1) * block);
                    }
                }
                TensorData::Bytes(out)
            }
            other => return Err(format!("Concat of {} is not supported", other.datatype())),
        };
        Ok(vec![(shape, data)])
    }
}

/// `Reshape` (0 copies the input's dimension, -1 is inferred).
#[derive(Debug)]
pub(crate) struct Reshape;

impl Op for Reshape {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = input(inputs, 0)?;
        let spec = int64s(input(inputs, 1)?)?;
        let mut shape = Vec::with_capacity(spec.len());
        let mut inferred = None;
        for (i, &d) in spec.iter().enumerate() {
            match d {
                0 => shape.push(*x.shape.get(i).ok_or("0 refers past the input's rank")?),
                -1 if inferred.is_none() => {
                    inferred = Some(i);
                    shape.push(1);
                }
                d if d > 0 => shape.push(d as usize),
                d => return Err(format!("bad target dimension {d} in {spec:?}")),
            }
        }
        let known: usize = shape.iter().product();
        if let Some(i) = inferred {
            if known == 0 || x.len() % known != 0 {
                return Err(format!("cannot reshape {:?} to {spec:?}", x.shape));
            }
            shape[i] = x.len() / known;
        }
        if shape.iter().product::<usize>() != x.len() {
            return Err(format!("cannot reshape {:?} to {spec:?}", x.shape));
        }
        Ok(vec![(shape, x.data().clone())])
    }
}

/// `OneHotEncoder`: appends a dimension of one indicator per category.
#[derive(Debug)]
pub(crate) struct OneHotEncoder {
    categories: Categories,
    /// Unknown categories give all zeros (otherwise they are an error).
    zeros: bool,
}

#[derive(Debug)]
enum Categories {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl OneHotEncoder {
    pub(crate) fn new(a: Attributes<'_>) -> Result<OneHotEncoder, String> {
        let ints = a.ints("cats_int64s");
        let strings = a.strings("cats_strings");
        let categories = match (ints.is_empty(), strings.is_empty()) {
            (false, true) => Categories::Ints(ints),
            (true, false) => Categories::Strings(strings),
            _ => return Err("exactly one of cats_int64s and cats_strings must be given".into()),
        };
        Ok(OneHotEncoder {
            categories,
            zeros: a.int("zeros", 1) != 0,
        })
    }
}

impl Op for OneHotEncoder {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = input(inputs, 0)?;
        let width = match &self.categories {
            Categories::Ints(c) => c.len(),
            Categories::Strings(c) => c.len(),
        };
        let positions: Vec<Option<usize>> = match (&self.categories, x.data()) {
            (Categories::Ints(c), TensorData::I64(v)) => {
                v.iter().map(|x| c.iter().position(|c| c == x)).collect()
            }
            (Categories::Ints(c), TensorData::F32(v)) => v
                .iter()
                .map(|&x| c.iter().position(|&c| c as f32 == x))
                .collect(),
            (Categories::Ints(c), TensorData::F64(v)) => v
                .iter()
                .map(|&x| c.iter().position(|&c| c as f64 == x))
                .collect(),
            (Categories::Strings(c), TensorData::Bytes(v)) => v
                .iter()
                .map(|x| c.iter().position(|c| c.as_bytes() == x))
                .collect(),
            (_, other) => {
                return Err(format!(
                    "input of {} does not match the categories' type",
                    other.datatype()
                ));
            }
        };
        let mut out = vec![0.0f32; positions.len() * width];
        for (i, p) in positions.iter().enumerate() {
            match p {
                Some(p) => out[i * width + p] = 1.0,
                None if self.zeros => {}
                None => return Err(format!("element {i} is not a known category")),
            }
        }
        let mut shape = x.shape.clone();
        shape.push(width);
        Ok(vec![(shape, TensorData::F32(out))])
    }
}
