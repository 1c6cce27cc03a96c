//! TensorFlow Serving's REST bodies: the row (`instances`) and columnar (`inputs`) request
//! formats turned into tensors, and outputs back into `predictions` / `outputs`; the
//! `examples` of `:classify` and `:regress`. Shapes come from the nesting of the JSON lists, as
//! TF Serving infers them; strings are UTF-8 or `{"b64": "..."}`.
//!
//! Bodies are decoded by serde visitors driven by the model's signature, straight from the
//! bytes into each input's typed buffer (no `serde_json::Value` tree), checking as they go:
//! a name the model lacks stops decoding before its value is read, and so do a row past
//! `max_batch_size`, an input past `max_tensor_elements` and all inputs together past
//! `max_decoded_bytes`. A `context` is decoded once and repeated only into the final buffers,
//! whose size is checked before they are allocated. Scalars convert as in the V2 JSON API.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine;
use ferroserve_core::{ByteStrings, DataType, Signature, Tensor, TensorData, ValidationError};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::budget::Reservation;
use crate::codec::json::Element;
use crate::codec::{ProtocolError, RequestLimits};

/// Makes a visitor its own `DeserializeSeed`, read through `Deserializer::$method`: each
/// seed here carries the decoder state its visitor fills, so the two are one type.
macro_rules! self_seed {
    ($seed:ty => $value:ty, $method:ident $(; $param:ident: $bound:path)?) => {
        impl<'de $(, $param: $bound)?> DeserializeSeed<'de> for $seed {
            type Value = $value;

            fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.$method(self)
            }
        }
    };
}

/// Which request format was used, so the answer comes back in the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// `instances`: one entry per row; answered as `predictions`.
    Row,
    /// `inputs`: whole tensors; answered as `outputs`.
    Columnar,
}

/// What one body may decode to: the server's limits and the model's largest batch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Elements per tensor, and decoded bytes of all input tensors together.
    pub(super) request: RequestLimits,
    /// Most rows (`instances`, `examples`, the first dimension of `inputs`) a request may
    /// carry; 0 = the model has no batch dimension, so no limit.
    pub(super) max_batch_size: usize,
}

fn error(message: impl Into<String>) -> ProtocolError {
    ProtocolError::Json {
        message: message.into(),
    }
}

fn not_json(e: &serde_json::Error) -> ProtocolError {
    error(format!("the body is not JSON: {e}"))
}

/// The body of `:predict` as tensors named after `signature`'s inputs, decoded straight into
/// typed buffers and checked against `limits` as they grow.
pub(super) fn decode_predict(
    body: &[u8],
    signature: &Signature,
    limits: Limits,
    held: &mut Reservation,
) -> Result<(Vec<Tensor>, Layout), ProtocolError> {
    require_object(
        body,
        "the body must be a JSON object with \"instances\" or \"inputs\"",
    )?;
    let mut decoder = Decoder::new(signature, limits, held);
    let parts: PredictParts = decoder.read_body(body)?;
    match parts.format {
        None => Err(error(
            "the body needs \"instances\" (rows) or \"inputs\" (columns)",
        )),
        Some(Layout::Row) => {
            if !parts.named && signature.inputs.len() != 1 {
                return Err(several_inputs(signature, "each instance"));
            }
            let tensors = rows_tensors(signature, parts.columns, parts.rows)?;
            Ok((tensors, Layout::Row))
        }
        Some(Layout::Columnar) => {
            let tensors = parts
                .columns
                .into_iter()
                .map(|c| Tensor::new(&signature.inputs[c.input].name, c.shape.dims, c.data))
                .collect::<Result<_, _>>()?;
            Ok((tensors, Layout::Columnar))
        }
    }
}

/// `examples` (with `context` features shared by all) as one row each of every input. The
/// context is decoded once and repeated only into the final buffers, whose size is checked
/// before they are allocated.
pub(super) fn decode_examples(
    body: &[u8],
    signature: &Signature,
    limits: Limits,
    held: &mut Reservation,
) -> Result<Vec<Tensor>, ProtocolError> {
    const NEEDS: &str = "the body needs \"examples\": a list of feature objects";
    require_object(body, NEEDS)?;
    let mut decoder = Decoder::new(signature, limits, held);
    let parts: ExamplesParts = decoder.read_body(body)?;
    match parts.rows {
        None => Err(error(NEEDS)),
        Some(0) => Err(error("\"examples\" is empty")),
        Some(rows) => {
            decoder.assemble(parts.columns, parts.pending, parts.context.as_deref(), rows)
        }
    }
}

/// Refuses a body that is not a JSON object, before any decoding: with `message` when it is
/// JSON, else as not JSON.
fn require_object(body: &[u8], message: &str) -> Result<(), ProtocolError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Ok(());
    }
    match serde_json::from_slice::<IgnoredAny>(body) {
        Ok(_) => Err(error(message)),
        Err(e) => Err(not_json(&e)),
    }
}

fn several_inputs(signature: &Signature, what: &str) -> ProtocolError {
    error(format!(
        "the model has {} inputs: {what} must be an object naming them",
        signature.inputs.len()
    ))
}

/// The row tensors: `rows` rows of each column, of the shape its first row implied.
fn rows_tensors(
    signature: &Signature,
    columns: Vec<Column>,
    rows: usize,
) -> Result<Vec<Tensor>, ProtocolError> {
    columns
        .into_iter()
        .map(|c| {
            let mut shape = Vec::with_capacity(c.shape.dims.len() + 1);
            shape.push(rows);
            shape.extend(c.shape.dims);
            Ok(Tensor::new(&signature.inputs[c.input].name, shape, c.data)?)
        })
        .collect()
}

/// What every part of one body's decoding shares: the model's inputs, the limits, the bytes
/// decoded so far, and the first fault (serde's errors carry only text, so ours wait here).
struct Decoder<'s> {
    signature: &'s Signature,
    limits: Limits,
    /// The request's share of the server's memory budget (its body's bytes already), grown
    /// ahead of `decoded`.
    held: &'s mut Reservation,
    /// Bytes of `held` reserved for the tensors.
    reserved: usize,
    /// Bytes held for the request's tensors so far (their binary size).
    decoded: usize,
    fault: Option<ProtocolError>,
}

impl<'s> Decoder<'s> {
    fn new(signature: &'s Signature, limits: Limits, held: &'s mut Reservation) -> Decoder<'s> {
        Decoder {
            signature,
            limits,
            held,
            reserved: 0,
            decoded: 0,
            fault: None,
        }
    }

    /// Keeps `fault` (the first one) for [`Decoder::outcome`] and stops serde.
    fn stop<E: de::Error>(&mut self, fault: ProtocolError) -> E {
        self.fault.get_or_insert(fault);
        E::custom("decoding stopped")
    }

    /// Reads `body`, a JSON object and nothing after it, into what `P` keeps of it.
    fn read_body<P: BodyParts>(&mut self, body: &[u8]) -> Result<P, ProtocolError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = BodyObject::<P> {
            decoder: self,
            parts: PhantomData,
        }
        .deserialize(&mut de)
        .and_then(|parts| de.end().map(|()| parts));
        self.outcome(parsed)
    }

    /// The fault that stopped decoding, else serde's result.
    fn outcome<T>(&mut self, parsed: Result<T, serde_json::Error>) -> Result<T, ProtocolError> {
        match (self.fault.take(), parsed) {
            (Some(fault), _) => Err(fault),
            (None, Ok(value)) => Ok(value),
            (None, Err(e)) => Err(not_json(&e)),
        }
    }

    /// Counts `bytes` more of decoded tensor data against the request's budget.
    fn charge(&mut self, bytes: usize) -> Result<(), ProtocolError> {
        self.decoded = self.decoded.saturating_add(bytes);
        let limit = self.limits.request.max_decoded_bytes;
        if self.decoded > limit {
            return Err(ProtocolError::DecodedTooLarge {
                bytes: self.decoded,
                limit,
            });
        }
        // The server-wide budget is asked in doublings (from 64 KiB, never past the request's
        // limit), not per element: at most twice what is decoded is held.
        let reserved = self.reserved;
        if self.decoded > reserved {
            let more = (self.decoded - reserved)
                .max(reserved)
                .max(64 * 1024)
                .min(limit - reserved);
            self.held.grow(more)?;
            self.reserved += more;
        }
        Ok(())
    }

    /// An empty column for every input.
    fn columns(&self) -> Vec<Column> {
        (0..self.signature.inputs.len())
            .map(|input| Column {
                input,
                data: TensorData::with_capacity(self.signature.inputs[input].datatype, 0),
                shape: Shape::default(),
            })
            .collect()
    }

    fn name(&self, input: usize) -> &'s str {
        &self.signature.inputs[input].name
    }

    /// A name the model has no input of, given at `place`.
    fn unknown(&self, place: Place, name: &str) -> ProtocolError {
        error(format!(
            "{place}: the model has no input '{name}'; its inputs are {:?}",
            self.signature.input_names()
        ))
    }

    /// More rows than the model's `max_batch_size`: `got` of them.
    fn too_many_rows(&self, got: usize) -> ProtocolError {
        let tensor = self
            .signature
            .inputs
            .first()
            .map_or("", |s| s.name.as_str());
        ValidationError::BatchTooLarge {
            tensor: tensor.to_owned(),
            max: self.limits.max_batch_size,
            got,
        }
        .into()
    }

    /// The `rows` example tensors: each column's own rows, and the context's value in the rows
    /// `pending` lists for it (the context repeated into the final buffer only, its size
    /// checked first).
    fn assemble(
        &mut self,
        columns: Vec<Column>,
        pending: Vec<Vec<usize>>,
        context: Option<&[Option<Column>]>,
        rows: usize,
    ) -> Result<Vec<Tensor>, ProtocolError> {
        let mut tensors = Vec::with_capacity(columns.len());
        for (column, pending) in columns.into_iter().zip(pending) {
            let name = self.name(column.input);
            let Some(&first) = pending.first() else {
                tensors.extend(rows_tensors(self.signature, vec![column], rows)?);
                continue;
            };
            let Some(shared) = context.as_ref().and_then(|c| c[column.input].as_ref()) else {
                return Err(error(format!("examples[{first}] has no input '{name}'")));
            };
            if column.shape.known && column.shape.dims != shared.shape.dims {
                return Err(error(format!(
                    "examples '{name}': ragged lists: the context's value has shape {:?} where \
                     the examples' imply {:?}",
                    shared.shape.dims, column.shape.dims
                )));
            }
            let per_row = shared.data.len();
            let limit = self.limits.request.max_tensor_elements;
            match rows.checked_mul(per_row) {
                Some(total) if total <= limit => {}
                total => {
                    return Err(ValidationError::TooManyElements {
                        tensor: name.to_owned(),
                        limit,
                        got: total.unwrap_or(usize::MAX),
                    }
                    .into());
                }
            }
            self.charge(pending.len().saturating_mul(shared.data.byte_size()))?;
            let mut data = column.data;
            interleave(&mut data, &shared.data, rows, &pending);
            let mut shape = vec![rows];
            shape.extend_from_slice(&shared.shape.dims);
            tensors.push(Tensor::new(name, shape, data)?);
        }
        Ok(tensors)
    }
}

/// Grows `own` (the rows of the examples that give the input, in order) to `rows` rows in
/// place: the examples listed in `pending` get `shared` (the context's value, one row), the
/// others their own row, moved from the last backwards so no row is held twice.
fn interleave(own: &mut TensorData, shared: &TensorData, rows: usize, pending: &[usize]) {
    fn fill<T: Clone + Default>(own: &mut Vec<T>, shared: &[T], rows: usize, pending: &[usize]) {
        let width = shared.len();
        if width == 0 {
            return; // Rows of no elements: nothing to place.
        }
        let mut kept = own.len() / width;
        own.resize(rows * width, T::default());
        let mut pending = pending.iter().rev().peekable();
        for row in (0..rows).rev() {
            let at = row * width;
            if pending.next_if_eq(&&row).is_some() {
                own[at..at + width].clone_from_slice(shared);
            } else {
                kept -= 1;
                // Rows past `kept` hold no own row any more, so the swap loses nothing.
                for k in 0..width {
                    own.swap(kept * width + k, at + k);
                }
            }
        }
    }
    /// BYTES elements vary in length, so rows cannot be swapped in place: the column is
    /// rebuilt, its own rows copied once.
    fn fill_strings(own: &mut ByteStrings, shared: &ByteStrings, rows: usize, pending: &[usize]) {
        let width = shared.len();
        if width == 0 {
            return;
        }
        let mut out = ByteStrings::with_capacity(
            rows * width,
            own.total_bytes() + pending.len() * shared.total_bytes(),
        );
        let mut kept = 0;
        let mut pending = pending.iter().peekable();
        for row in 0..rows {
            if pending.next_if_eq(&&row).is_some() {
                out.extend_from(shared);
            } else {
                out.extend_from_range(own, kept * width, (kept + 1) * width);
                kept += 1;
            }
        }
        *own = out;
    }
    macro_rules! fill {
        ($($v:ident),*) => {
            match (own, shared) {
                $((TensorData::$v(a), TensorData::$v(b)) => fill(a, b, rows, pending),)*
                (TensorData::Bytes(a), TensorData::Bytes(b)) => fill_strings(a, b, rows, pending),
                _ => unreachable!("a column and the context's value have their input's datatype"),
            }
        };
    }
    fill!(
        Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, Bf16, F32, F64
    );
}

/// One input's elements as they are decoded, and the shape its first value implied.
struct Column {
    /// The input's index in the signature.
    input: usize,
    data: TensorData,
    shape: Shape,
}

/// The dimensions of a value along its first elements, as TF Serving infers them; learnt from
/// the first value, then every other value must have them.
#[derive(Default)]
struct Shape {
    dims: Vec<usize>,
    /// Whether `dims` is complete (the first value has been read to a scalar or empty list).
    known: bool,
}

/// Where a value is, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Instance(usize),
    Inputs,
    Example(usize),
    Context,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Instance(i) => write!(f, "instances[{i}]"),
            Place::Inputs => f.write_str("inputs"),
            Place::Example(i) => write!(f, "examples[{i}]"),
            Place::Context => f.write_str("context"),
        }
    }
}

/// At most the first 100 characters of `s` (names and strings quoted in messages).
fn clip(s: &str) -> &str {
    s.char_indices().nth(100).map_or(s, |(at, _)| &s[..at])
}

/// One JSON scalar (or object) where a tensor element is expected.
enum Scalar<'a> {
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(&'a str),
    /// The bytes of a `{"b64": ...}` object.
    Bytes(Vec<u8>),
    Null,
    /// Any other object.
    Object,
}

impl fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(v) => write!(f, "{v}"),
            Scalar::I64(v) => write!(f, "{v}"),
            Scalar::U64(v) => write!(f, "{v}"),
            Scalar::F64(v) => write!(f, "{v:?}"),
            Scalar::Str(v) if clip(v).len() < v.len() => write!(f, "{:?}...", clip(v)),
            Scalar::Str(v) => write!(f, "{v:?}"),
            Scalar::Bytes(_) => f.write_str("a {\"b64\": ...} string"),
            Scalar::Null => f.write_str("null"),
            Scalar::Object => f.write_str("an object"),
        }
    }
}

/// Appends `s` converted to `data`'s type (as the V2 JSON parser converts); the bytes it
/// takes in binary form, or `s` back when it does not convert.
fn push<'a>(data: &mut TensorData, s: Scalar<'a>) -> Result<usize, Scalar<'a>> {
    fn one<'a, T: Element>(v: &mut Vec<T>, s: Scalar<'a>) -> Result<usize, Scalar<'a>> {
        let converted = match &s {
            Scalar::Bool(b) => T::from_bool(*b),
            Scalar::I64(i) => T::from_i64(*i),
            Scalar::U64(u) => T::from_u64(*u),
            Scalar::F64(x) => T::from_f64(*x),
            Scalar::Str(text) => T::from_str(text),
            Scalar::Bytes(_) | Scalar::Null | Scalar::Object => None,
        };
        let value = converted.ok_or(s)?;
        v.push(value);
        Ok(std::mem::size_of::<T>())
    }
    match data {
        TensorData::Bool(v) => one(v, s),
        TensorData::U8(v) => one(v, s),
        TensorData::U16(v) => one(v, s),
        TensorData::U32(v) => one(v, s),
        TensorData::U64(v) => one(v, s),
        TensorData::I8(v) => one(v, s),
        TensorData::I16(v) => one(v, s),
        TensorData::I32(v) => one(v, s),
        TensorData::I64(v) => one(v, s),
        TensorData::F16(v) => one(v, s),
        TensorData::Bf16(v) => one(v, s),
        TensorData::F32(v) => one(v, s),
        TensorData::F64(v) => one(v, s),
        TensorData::Bytes(v) => {
            let size = match &s {
                Scalar::Str(text) => text.len(),
                Scalar::Bytes(bytes) => bytes.len(),
                _ => return Err(s),
            };
            match s {
                Scalar::Str(text) => v.push(text.as_bytes()),
                Scalar::Bytes(bytes) => v.push(bytes),
                _ => {}
            }
            Ok(size + 4)
        }
    }
}

/// Counts the rest of a list without decoding it.
fn skip_rest<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<usize, A::Error> {
    let mut n = 0;
    while seq.next_element::<IgnoredAny>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// A value of one input (a scalar or nested lists of them) appended to its column, checking
/// the shape the column's first value implied and the limits as it goes.
struct ValueSeed<'a, 's> {
    decoder: &'a mut Decoder<'s>,
    column: &'a mut Column,
    place: Place,
    depth: usize,
    /// Whether this value is on the first-elements path of the column's first value, whose
    /// list lengths become the shape.
    learning: bool,
}

impl<'a, 's> ValueSeed<'a, 's> {
    /// The whole value of `column` at `place`.
    fn top(decoder: &'a mut Decoder<'s>, column: &'a mut Column, place: Place) -> Self {
        let learning = !column.shape.known;
        ValueSeed {
            decoder,
            column,
            place,
            depth: 0,
            learning,
        }
    }

    fn child(&mut self, learning: bool) -> ValueSeed<'_, 's> {
        ValueSeed {
            decoder: &mut *self.decoder,
            column: &mut *self.column,
            place: self.place,
            depth: self.depth + 1,
            learning,
        }
    }

    /// Stops with `message` about this input at this place.
    fn fail<E: de::Error>(&mut self, message: fmt::Arguments<'_>) -> E {
        let name = self.decoder.name(self.column.input);
        let fault = error(format!("{} '{name}': {message}", self.place));
        self.decoder.stop(fault)
    }

    fn ragged<E: de::Error>(&mut self, len: usize) -> E {
        let rest = self.column.shape.dims.get(self.depth..).unwrap_or(&[]);
        let rest = format!("{rest:?}");
        self.fail(format_args!(
            "ragged lists: a list of {len} where the first rows imply {rest}"
        ))
    }

    /// Appends one element, after checking it stands where the shape has a scalar and that
    /// the column and the request stay within their limits.
    fn leaf<E: de::Error>(mut self, s: Scalar<'_>) -> Result<(), E> {
        if self.learning {
            self.column.shape.known = true;
        } else if self.depth < self.column.shape.dims.len() {
            let rest = format!("{:?}", &self.column.shape.dims[self.depth..]);
            return Err(self.fail(format_args!(
                "a scalar where the first rows imply a list {rest}"
            )));
        }
        let name = self.decoder.name(self.column.input);
        let limit = self.decoder.limits.request.max_tensor_elements;
        let len = self.column.data.len();
        if len >= limit {
            let fault = ValidationError::TooManyElements {
                tensor: name.to_owned(),
                limit,
                got: len + 1,
            };
            return Err(self.decoder.stop(fault.into()));
        }
        let datatype = self.column.data.datatype();
        match push(&mut self.column.data, s) {
            Ok(bytes) => self
                .decoder
                .charge(bytes)
                .map_err(|fault| self.decoder.stop(fault)),
            Err(s) => {
                let fault = error(format!(
                    "input '{name}': {s} is not a {} value",
                    tf_dtype(datatype)
                ));
                Err(self.decoder.stop(fault))
            }
        }
    }

    /// The rest of an object standing for an element: `{"b64": "..."}` for strings, else an
    /// error. `first` is whether its first key, already read, was "b64" (`None`: not read).
    fn object<'de, A: MapAccess<'de>>(
        mut self,
        first: Option<bool>,
        mut map: A,
    ) -> Result<(), A::Error> {
        if self.column.data.datatype() != DataType::Bytes {
            return self.leaf(Scalar::Object);
        }
        let mut key = first;
        let mut b64 = None;
        loop {
            let is_b64 = match key.take() {
                Some(k) => k,
                None => match map.next_key_seed(IsB64)? {
                    Some(k) => k,
                    None => break,
                },
            };
            if is_b64 && b64.is_none() {
                b64 = Some(map.next_value_seed(B64)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        match b64 {
            Some(Some(bytes)) => self.leaf(Scalar::Bytes(bytes)),
            Some(None) => {
                Err(self.fail(format_args!("{{\"b64\": ...}} must hold a base64 string")))
            }
            None => self.leaf(Scalar::Object),
        }
    }
}

self_seed!(ValueSeed<'_, '_> => (), deserialize_any);

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor value: a scalar or nested lists")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        if !self.learning {
            let Some(&expected) = self.column.shape.dims.get(depth) else {
                let len = skip_rest(&mut seq)?;
                return Err(self.ragged(len));
            };
            for n in 0..expected {
                if seq.next_element_seed(self.child(false))?.is_none() {
                    return Err(self.ragged(n));
                }
            }
            match skip_rest(&mut seq)? {
                0 => return Ok(()),
                extra => return Err(self.ragged(expected + extra)),
            }
        }
        // The first value: this list's length is the next dimension. The whole first
        // dimension of `inputs` is the batch, limited as `instances` are.
        self.column.shape.dims.push(0);
        let max_batch = self.decoder.limits.max_batch_size;
        let cap = if self.place == Place::Inputs && depth == 0 && max_batch > 0 {
            max_batch
        } else {
            usize::MAX
        };
        let mut n = 0;
        loop {
            if n == cap {
                let extra = skip_rest(&mut seq)?;
                if extra > 0 {
                    let fault = self.decoder.too_many_rows(n + extra);
                    return Err(self.decoder.stop(fault));
                }
                break;
            }
            if seq.next_element_seed(self.child(n == 0))?.is_none() {
                break;
            }
            n += 1;
        }
        if n == 0 {
            self.column.shape.known = true;
        }
        self.column.shape.dims[depth] = n;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.object(None, map)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(Scalar::I64(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(Scalar::U64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.leaf(Scalar::F64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.leaf(Scalar::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf(Scalar::Null)
    }
}

/// Whether an object key is "b64".
struct IsB64;

self_seed!(IsB64 => bool, deserialize_str);

impl<'de> Visitor<'de> for IsB64 {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == "b64")
    }
}

/// Visitor methods for the JSON values a visitor does not take itself:
/// - `forwarded through $seed`: every scalar to the same visit method of the [`ValueSeed`]
///   that `self.$seed()` gives;
/// - `answered by $method`: every scalar by `self.$method()`;
/// - `passed over as $value`: every value but strings read through without decoding, `$value`.
macro_rules! scalars {
    (forwarded through $seed:ident) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            self.$seed()?.visit_bool(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.$seed()?.visit_i64(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.$seed()?.visit_u64(v)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            self.$seed()?.visit_f64(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            self.$seed()?.visit_str(v)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.$seed()?.visit_unit()
        }
    };
    (answered by $method:ident) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            self.$method()
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            self.$method()
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            self.$method()
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            self.$method()
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            self.$method()
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.$method()
        }
    };
    (passed over as $value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            skip_rest(&mut seq)?;
            Ok($value)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
}

/// The value of a `"b64"` key: its bytes, or `None` when it is not a base64 string.
struct B64;

self_seed!(B64 => Option<Vec<u8>>, deserialize_any);

impl<'de> Visitor<'de> for B64 {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(base64::engine::general_purpose::STANDARD.decode(v).ok())
    }

    scalars!(passed over as None);
}

/// `signature_name`: the name when it is one the model does not have (a value that is not a
/// string is ignored, as before).
struct SignatureName;

self_seed!(SignatureName => Option<String>, deserialize_any);

impl<'de> Visitor<'de> for SignatureName {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a signature name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((!v.is_empty() && v != "serving_default").then(|| clip(v).to_owned()))
    }

    scalars!(passed over as None);
}

/// A key of a top-level body.
enum Field {
    SignatureName,
    Instances,
    Inputs,
    Examples,
    Context,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "signature_name" => Field::SignatureName,
                    "instances" => Field::Instances,
                    "inputs" => Field::Inputs,
                    "examples" => Field::Examples,
                    "context" => Field::Context,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_str(FieldVisitor)
    }
}

/// A key of an object of inputs: the input it names, or the (clipped) name the model lacks.
enum Key {
    Input(usize),
    Other(String),
}

impl Key {
    fn is_b64(&self) -> bool {
        matches!(self, Key::Other(k) if k == "b64")
    }
}

struct KeySeed<'s>(&'s Signature);

self_seed!(KeySeed<'_> => Key, deserialize_str);

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match self.0.inputs.iter().position(|s| s.name == v) {
            Some(ix) => Key::Input(ix),
            None => Key::Other(clip(v).to_owned()),
        })
    }
}

/// Reads an object at `place` that must give every input ([`named_object`]); one it leaves
/// out stops the decoder, naming it.
fn every_input<'de, A: MapAccess<'de>>(
    decoder: &mut Decoder<'_>,
    columns: &mut [Column],
    place: Place,
    first: Option<Key>,
    map: &mut A,
) -> Result<(), A::Error> {
    let mut seen = vec![false; columns.len()];
    named_object(decoder, columns, &mut seen, place, first, map)?;
    match seen.iter().position(|s| !s) {
        Some(missing) => {
            let fault = error(format!("{place} has no input '{}'", decoder.name(missing)));
            Err(decoder.stop(fault))
        }
        None => Ok(()),
    }
}

/// Reads an object of inputs at `place` (its first key already read: `first`) into `columns`,
/// marking in `seen` the inputs it gives. A name the model does not have stops it before its
/// value is read, except in `examples` and `context`, where it is a feature skipped unread.
fn named_object<'de, A: MapAccess<'de>>(
    decoder: &mut Decoder<'_>,
    columns: &mut [Column],
    seen: &mut [bool],
    place: Place,
    first: Option<Key>,
    map: &mut A,
) -> Result<(), A::Error> {
    let signature = decoder.signature;
    let mut key = first;
    loop {
        let k = match key.take() {
            Some(k) => k,
            None => match map.next_key_seed(KeySeed(signature))? {
                Some(k) => k,
                None => return Ok(()),
            },
        };
        match k {
            Key::Input(ix) if seen[ix] => {
                let fault = error(format!(
                    "{place} gives input '{}' more than once",
                    decoder.name(ix)
                ));
                return Err(decoder.stop(fault));
            }
            Key::Input(ix) => {
                seen[ix] = true;
                map.next_value_seed(ValueSeed::top(decoder, &mut columns[ix], place))?;
            }
            // Features of an example (or its context) that the model does not take are
            // skipped unread, as TF Serving parses a tf.Example by the features it needs.
            Key::Other(_) if matches!(place, Place::Example(_) | Place::Context) => {
                map.next_value::<IgnoredAny>()?;
            }
            Key::Other(name) => {
                let fault = decoder.unknown(place, &name);
                return Err(decoder.stop(fault));
            }
        }
    }
}

/// What one verb keeps of the body's top-level object.
trait BodyParts: Sized {
    /// Reads the object's entries through `decoder`.
    fn read<'de, A: MapAccess<'de>>(decoder: &mut Decoder<'_>, map: A) -> Result<Self, A::Error>;
}

/// The body's top-level object, read into `P`.
struct BodyObject<'a, 's, P> {
    decoder: &'a mut Decoder<'s>,
    parts: PhantomData<P>,
}

self_seed!(BodyObject<'_, '_, P> => P, deserialize_map; P: BodyParts);

impl<'de, P: BodyParts> Visitor<'de> for BodyObject<'_, '_, P> {
    type Value = P;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<P, A::Error> {
        P::read(self.decoder, map)
    }
}

/// What a `:predict` body held.
struct PredictParts {
    format: Option<Layout>,
    /// Whether the instances are objects naming the inputs.
    named: bool,
    rows: usize,
    columns: Vec<Column>,
}

impl BodyParts for PredictParts {
    fn read<'de, A: MapAccess<'de>>(
        decoder: &mut Decoder<'_>,
        mut map: A,
    ) -> Result<Self, A::Error> {
        let mut parts = PredictParts {
            format: None,
            named: false,
            rows: 0,
            columns: decoder.columns(),
        };
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::SignatureName => {
                    if let Some(name) = map.next_value_seed(SignatureName)? {
                        let fault = error(format!(
                            "signature_name '{name}': the model has one signature, \
                             \"serving_default\""
                        ));
                        return Err(decoder.stop(fault));
                    }
                }
                Field::Instances | Field::Inputs if parts.format.is_some() => {
                    let fault = error("give either \"instances\" or \"inputs\", not both");
                    return Err(decoder.stop(fault));
                }
                Field::Instances => {
                    let mut named = None;
                    parts.rows = map.next_value_seed(RowList {
                        decoder: &mut *decoder,
                        columns: &mut parts.columns,
                        kind: RowKind::Instances { named: &mut named },
                    })?;
                    parts.named = named == Some(true);
                    parts.format = Some(Layout::Row);
                }
                Field::Inputs => {
                    map.next_value_seed(InputsValue {
                        decoder: &mut *decoder,
                        columns: &mut parts.columns,
                        place: Place::Inputs,
                        named: None,
                    })?;
                    parts.format = Some(Layout::Columnar);
                }
                Field::Examples | Field::Context | Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(parts)
    }
}

/// A list of rows (`instances`, `examples`), read a row at a time: at most the model's
/// `max_batch_size`, the rows past it counted, not decoded. Deserializes to the number of rows.
struct RowList<'a, 's> {
    decoder: &'a mut Decoder<'s>,
    columns: &'a mut [Column],
    kind: RowKind<'a>,
}

/// Which list a [`RowList`] reads, with what its rows need besides the decoder and columns.
enum RowKind<'a> {
    /// `instances`: whether the rows are objects naming the inputs (decided by the first).
    Instances { named: &'a mut Option<bool> },
    /// `examples`: feature objects; `context` when it came before the examples.
    Examples {
        pending: &'a mut [Vec<usize>],
        context: Option<&'a [Option<Column>]>,
    },
}

self_seed!(RowList<'_, '_> => usize, deserialize_any);

impl RowList<'_, '_> {
    fn not_a_list<E: de::Error>(self) -> Result<usize, E> {
        let fault = error(match self.kind {
            RowKind::Instances { .. } => "\"instances\" must be a list, one entry per row",
            RowKind::Examples { .. } => "the body needs \"examples\": a list of feature objects",
        });
        Err(self.decoder.stop(fault))
    }

    /// Reads row `index` as the next element of `seq`; `false` past the last.
    fn next_row<'de, A: SeqAccess<'de>>(
        &mut self,
        seq: &mut A,
        index: usize,
    ) -> Result<bool, A::Error> {
        let decoder = &mut *self.decoder;
        let columns = &mut *self.columns;
        let read = match &mut self.kind {
            RowKind::Instances { named } => seq.next_element_seed(InputsValue {
                decoder,
                columns,
                place: Place::Instance(index),
                named: Some(named),
            })?,
            RowKind::Examples { pending, context } => seq.next_element_seed(Example {
                decoder,
                columns,
                pending,
                context: *context,
                index,
            })?,
        };
        Ok(read.is_some())
    }
}

impl<'de> Visitor<'de> for RowList<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            RowKind::Instances { .. } => "a list of rows",
            RowKind::Examples { .. } => "a list of examples",
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<usize, A::Error> {
        let max = self.decoder.limits.max_batch_size;
        let mut index = 0;
        loop {
            if max > 0 && index == max {
                let extra = skip_rest(&mut seq)?;
                if extra > 0 {
                    let fault = self.decoder.too_many_rows(index + extra);
                    return Err(self.decoder.stop(fault));
                }
                return Ok(index);
            }
            if !self.next_row(&mut seq, index)? {
                return Ok(index);
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<usize, A::Error> {
        self.not_a_list()
    }

    scalars!(answered by not_a_list);
}

/// A value that holds every input: the single input's value, or an object naming each input.
/// It is `inputs`, or one row of `instances`.
struct InputsValue<'a, 's> {
    decoder: &'a mut Decoder<'s>,
    columns: &'a mut [Column],
    place: Place,
    /// For a row of `instances`: whether the rows are objects naming the inputs, decided by
    /// the first row and kept by the rest. `None` for `inputs`.
    named: Option<&'a mut Option<bool>>,
}

impl<'a, 's> InputsValue<'a, 's> {
    /// Whether the rows so far were objects naming the inputs (`None`: no row decided yet).
    fn named(&self) -> Option<bool> {
        self.named.as_deref().copied().flatten()
    }

    /// The value as the single input's.
    fn positional<E: de::Error>(mut self) -> Result<ValueSeed<'a, 's>, E> {
        let signature = self.decoder.signature;
        if self.named() == Some(true) {
            let fault = error(format!(
                "{} has no input '{}': the first instance names the inputs, so every one must",
                self.place,
                signature.inputs.first().map_or("", |s| s.name.as_str())
            ));
            return Err(self.decoder.stop(fault));
        }
        if signature.inputs.len() != 1 {
            let what = match self.place {
                Place::Inputs => "\"inputs\"",
                _ => "each instance",
            };
            return Err(self.decoder.stop(several_inputs(signature, what)));
        }
        if let Some(named) = self.named.as_deref_mut() {
            *named = Some(false);
        }
        Ok(ValueSeed::top(
            self.decoder,
            &mut self.columns[0],
            self.place,
        ))
    }
}

self_seed!(InputsValue<'_, '_> => (), deserialize_any);

impl<'de> Visitor<'de> for InputsValue<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.place {
            Place::Inputs => "inputs",
            _ => "a row",
        })
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        if self.named() == Some(false) {
            return self.positional()?.visit_map(map);
        }
        let first = map.next_key_seed(KeySeed(self.decoder.signature))?;
        if self.named().is_none() && first.as_ref().is_some_and(Key::is_b64) {
            // `{"b64": ...}`: a value of the single input, not an object of inputs.
            return self.positional()?.object(Some(true), map);
        }
        if let Some(named) = self.named.as_deref_mut() {
            *named = Some(true);
        }
        every_input(self.decoder, self.columns, self.place, first, &mut map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.positional()?.visit_seq(seq)
    }

    scalars!(forwarded through positional);
}

/// What a `:classify` / `:regress` body held.
struct ExamplesParts {
    /// Each input's own values, of the examples that give it.
    columns: Vec<Column>,
    /// For each input, the examples (in order) that take it from the context.
    pending: Vec<Vec<usize>>,
    /// The context's value of each input it gives; `None` without a context object.
    context: Option<Vec<Option<Column>>>,
    /// How many examples; `None` when there is no `examples` list.
    rows: Option<usize>,
}

impl BodyParts for ExamplesParts {
    fn read<'de, A: MapAccess<'de>>(
        decoder: &mut Decoder<'_>,
        mut map: A,
    ) -> Result<Self, A::Error> {
        let inputs = decoder.signature.inputs.len();
        let mut parts = ExamplesParts {
            columns: decoder.columns(),
            pending: vec![Vec::new(); inputs],
            context: None,
            rows: None,
        };
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Examples if parts.rows.is_some() => {
                    return Err(decoder.stop(error("\"examples\" is given more than once")));
                }
                Field::Examples => {
                    parts.rows = Some(map.next_value_seed(RowList {
                        decoder: &mut *decoder,
                        columns: &mut parts.columns,
                        kind: RowKind::Examples {
                            pending: &mut parts.pending,
                            context: parts.context.as_deref(),
                        },
                    })?);
                }
                Field::Context if parts.context.is_some() => {
                    return Err(decoder.stop(error("\"context\" is given more than once")));
                }
                Field::Context => {
                    parts.context = map.next_value_seed(Context {
                        decoder: &mut *decoder,
                    })?;
                }
                Field::SignatureName | Field::Instances | Field::Inputs | Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(parts)
    }
}

/// `context`: features every example takes unless it gives its own; decoded once. A value
/// that is not an object is ignored, as before.
struct Context<'a, 's> {
    decoder: &'a mut Decoder<'s>,
}

self_seed!(Context<'_, '_> => Option<Vec<Option<Column>>>, deserialize_any);

impl Context<'_, '_> {
    fn ignored<E: de::Error>(self) -> Result<Option<Vec<Option<Column>>>, E> {
        Ok(None)
    }
}

impl<'de> Visitor<'de> for Context<'_, '_> {
    type Value = Option<Vec<Option<Column>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of features")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut columns = self.decoder.columns();
        let mut seen = vec![false; columns.len()];
        let first = map.next_key_seed(KeySeed(self.decoder.signature))?;
        named_object(
            self.decoder,
            &mut columns,
            &mut seen,
            Place::Context,
            first,
            &mut map,
        )?;
        Ok(Some(
            columns
                .into_iter()
                .zip(seen)
                .map(|(c, given)| given.then_some(c))
                .collect(),
        ))
    }

    scalars!(answered by ignored);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        skip_rest(&mut seq)?;
        Ok(None)
    }
}

/// Example `index`: an object of features; those it lacks are taken from the context.
struct Example<'a, 's> {
    decoder: &'a mut Decoder<'s>,
    columns: &'a mut [Column],
    pending: &'a mut [Vec<usize>],
    context: Option<&'a [Option<Column>]>,
    index: usize,
}

self_seed!(Example<'_, '_> => (), deserialize_any);

impl Example<'_, '_> {
    fn not_an_object<E: de::Error>(self) -> Result<(), E> {
        let fault = error(format!(
            "examples[{}] must be an object of features",
            self.index
        ));
        Err(self.decoder.stop(fault))
    }
}

impl<'de> Visitor<'de> for Example<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of features")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let place = Place::Example(self.index);
        let mut seen = vec![false; self.columns.len()];
        let first = map.next_key_seed(KeySeed(self.decoder.signature))?;
        named_object(
            self.decoder,
            self.columns,
            &mut seen,
            place,
            first,
            &mut map,
        )?;
        for (input, _) in seen.iter().enumerate().filter(|(_, given)| !**given) {
            // A context already read that lacks the feature cannot fill it in.
            if self.context.is_some_and(|c| c[input].is_none()) {
                let fault = error(format!(
                    "{place} has no input '{}'",
                    self.decoder.name(input)
                ));
                return Err(self.decoder.stop(fault));
            }
            self.pending[input].push(self.index);
            self.decoder
                .charge(std::mem::size_of::<usize>())
                .map_err(|fault| self.decoder.stop(fault))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.not_an_object()
    }

    scalars!(answered by not_an_object);
}

/// TensorFlow's name of a datatype (`DT_FLOAT`, ...).
pub(super) fn tf_dtype(datatype: DataType) -> &'static str {
    match datatype {
        DataType::Bool => "DT_BOOL",
        DataType::Uint8 => "DT_UINT8",
        DataType::Uint16 => "DT_UINT16",
        DataType::Uint32 => "DT_UINT32",
        DataType::Uint64 => "DT_UINT64",
        DataType::Int8 => "DT_INT8",
        DataType::Int16 => "DT_INT16",
        DataType::Int32 => "DT_INT32",
        DataType::Int64 => "DT_INT64",
        DataType::Fp16 => "DT_HALF",
        DataType::Bf16 => "DT_BFLOAT16",
        DataType::Fp32 => "DT_FLOAT",
        DataType::Fp64 => "DT_DOUBLE",
        DataType::Bytes => "DT_STRING",
    }
}

/// The `:predict` answer in `format`.
pub(super) fn encode_predict(outputs: &[Tensor], format: Layout) -> Result<Vec<u8>, ProtocolError> {
    struct Body<'a>(&'a [Tensor], Layout);
    impl Serialize for Body<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(1))?;
            match (self.1, self.0) {
                (Layout::Row, [only]) => map.serialize_entry("predictions", &Rows(only))?,
                (Layout::Row, outputs) => {
                    map.serialize_entry("predictions", &NamedRows(outputs))?
                }
                (Layout::Columnar, [only]) => map.serialize_entry("outputs", &whole(only))?,
                (Layout::Columnar, outputs) => {
                    map.serialize_entry("outputs", &Named(outputs))?;
                }
            }
            map.end()
        }
    }
    if format == Layout::Row
        && let Some(t) = outputs.iter().find(|t| t.shape.is_empty())
    {
        return Err(error(format!(
            "output '{}' is a scalar: ask in the columnar format (\"inputs\")",
            t.name
        )));
    }
    serde_json::to_vec(&Body(outputs, format)).map_err(|e| error(e.to_string()))
}

/// A whole tensor as nested lists.
fn whole(t: &Tensor) -> Nested<'_> {
    Nested {
        data: t.data(),
        shape: &t.shape,
        start: 0,
    }
}

/// Elements `start..` of `data` nested as `shape`.
struct Nested<'a> {
    data: &'a TensorData,
    shape: &'a [usize],
    start: usize,
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some((&n, inner)) = self.shape.split_first() else {
            return scalar(self.data, self.start, s);
        };
        let stride: usize = inner.iter().product();
        let mut seq = s.serialize_seq(Some(n))?;
        for i in 0..n {
            seq.serialize_element(&Nested {
                data: self.data,
                shape: inner,
                start: self.start + i * stride,
            })?;
        }
        seq.end()
    }
}

/// Element `i` of `data` as a JSON scalar (strings as UTF-8, else `{"b64": ...}`).
fn scalar<S: Serializer>(data: &TensorData, i: usize, s: S) -> Result<S::Ok, S::Error> {
    match data {
        TensorData::Bool(v) => s.serialize_bool(v[i]),
        TensorData::U8(v) => s.serialize_u8(v[i]),
        TensorData::U16(v) => s.serialize_u16(v[i]),
        TensorData::U32(v) => s.serialize_u32(v[i]),
        TensorData::U64(v) => s.serialize_u64(v[i]),
        TensorData::I8(v) => s.serialize_i8(v[i]),
        TensorData::I16(v) => s.serialize_i16(v[i]),
        TensorData::I32(v) => s.serialize_i32(v[i]),
        TensorData::I64(v) => s.serialize_i64(v[i]),
        TensorData::F16(v) => s.serialize_f32(v[i].to_f32()),
        TensorData::Bf16(v) => s.serialize_f32(v[i].to_f32()),
        TensorData::F32(v) => s.serialize_f32(v[i]),
        TensorData::F64(v) => s.serialize_f64(v[i]),
        TensorData::Bytes(v) => match std::str::from_utf8(&v[i]) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(
                    "b64",
                    &base64::engine::general_purpose::STANDARD.encode(&v[i]),
                )?;
                map.end()
            }
        },
    }
}

/// One output's rows: `[row 0, row 1, ...]`.
struct Rows<'a>(&'a Tensor);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let (n, inner) = t.shape.split_first().expect("scalars are refused earlier");
        let stride: usize = inner.iter().product();
        let mut seq = s.serialize_seq(Some(*n))?;
        for i in 0..*n {
            seq.serialize_element(&Nested {
                data: t.data(),
                shape: inner,
                start: i * stride,
            })?;
        }
        seq.end()
    }
}

/// Several outputs' rows: `[{name: row 0, ...}, ...]`.
struct NamedRows<'a>(&'a [Tensor]);

impl Serialize for NamedRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self
            .0
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(0);
        let mut seq = s.serialize_seq(Some(n))?;
        for i in 0..n {
            seq.serialize_element(&Row(self.0, i))?;
        }
        seq.end()
    }
}

/// Row `i` of every output.
struct Row<'a>(&'a [Tensor], usize);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for t in self.0 {
            let inner = &t.shape[1..];
            let stride: usize = inner.iter().product();
            map.serialize_entry(
                &t.name,
                &Nested {
                    data: t.data(),
                    shape: inner,
                    start: self.1 * stride,
                },
            )?;
        }
        map.end()
    }
}

/// Several whole outputs: `{name: nested lists, ...}`.
struct Named<'a>(&'a [Tensor]);

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for t in self.0 {
            map.serialize_entry(&t.name, &whole(t))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::TensorSpec;
    use serde_json::{Value, json};

    const LIMITS: Limits = Limits {
        request: RequestLimits {
            max_tensor_elements: 1000,
            max_decoded_bytes: 1 << 20,
        },
        max_batch_size: 0,
    };

    /// The tests write bodies as JSON values; the decoders read bytes.
    fn decode_predict(
        body: &Value,
        signature: &Signature,
    ) -> Result<(Vec<Tensor>, Layout), ProtocolError> {
        super::decode_predict(
            &serde_json::to_vec(body).unwrap(),
            signature,
            LIMITS,
            &mut unlimited(),
        )
    }

    fn signature(inputs: &[(&str, DataType)]) -> Signature {
        Signature {
            inputs: inputs
                .iter()
                .map(|(n, d)| TensorSpec::new(*n, *d, vec![-1, -1]))
                .collect(),
            outputs: vec![],
        }
    }

    #[test]
    fn row_and_columnar_bodies_give_the_same_tensor() {
        let sig = signature(&[("x", DataType::Fp32)]);
        let (rows, f) = decode_predict(&json!({"instances": [[1, 2], [3, 4.5]]}), &sig).unwrap();
        assert_eq!(f, Layout::Row);
        let (cols, f) =
            decode_predict(&json!({"inputs": {"x": [[1, 2], [3, 4.5]]}}), &sig).unwrap();
        assert_eq!(f, Layout::Columnar);
        assert_eq!(rows, cols);
        assert_eq!(rows[0].shape, [2, 2]);
        assert_eq!(rows[0].data(), &TensorData::F32(vec![1.0, 2.0, 3.0, 4.5]));
    }

    #[test]
    fn named_instances_feed_several_inputs_and_b64_strings_decode() {
        let sig = signature(&[("n", DataType::Int64), ("s", DataType::Bytes)]);
        let body = json!({"instances": [{"n": 1, "s": "a"}, {"n": 2, "s": {"b64": "/w=="}}]});
        let (t, _) = decode_predict(&body, &sig).unwrap();
        assert_eq!(t[0].data(), &TensorData::I64(vec![1, 2]));
        assert_eq!(
            t[1].data(),
            &TensorData::Bytes(vec![b"a".to_vec(), vec![0xff]].into())
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let sig = signature(&[("x", DataType::Int32)]);
        for (body, needle) in [
            (json!({"instances": [[1, 2], [3]]}), "ragged"),
            (json!({"instances": [[1.5]]}), "1.5 is not a DT_INT32"),
            (json!({"rows": []}), "\"instances\""),
            (json!({"instances": [], "inputs": []}), "not both"),
            (
                json!({"signature_name": "other", "instances": []}),
                "serving_default",
            ),
            (json!({"instances": [{}]}), "no input 'x'"),
            (json!({"instances": [{"x": 1, "y": 1}]}), "no input 'y'"),
            (json!({"instances": [[1], 2]}), "a scalar where"),
            (json!({"instances": [1, [2]]}), "ragged"),
            (json!({"instances": {"x": [1]}}), "must be a list"),
            (json!([1]), "must be a JSON object"),
        ] {
            let err = decode_predict(&body, &sig).unwrap_err().to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn outputs_come_back_in_the_request_format() {
        let y = Tensor::new("y", vec![2, 2], TensorData::F32(vec![0.1, 0.2, 0.3, 0.4])).unwrap();
        let l = Tensor::new("l", vec![2], TensorData::I64(vec![1, 0])).unwrap();
        let text = |o: &[Tensor], f| String::from_utf8(encode_predict(o, f).unwrap()).unwrap();
        assert_eq!(
            text(std::slice::from_ref(&y), Layout::Row),
            r#"{"predictions":[[0.1,0.2],[0.3,0.4]]}"#
        );
        assert_eq!(
            text(&[l.clone(), y.clone()], Layout::Row),
            r#"{"predictions":[{"l":1,"y":[0.1,0.2]},{"l":0,"y":[0.3,0.4]}]}"#
        );
        assert_eq!(
            text(&[l, y], Layout::Columnar),
            r#"{"outputs":{"l":[1,0],"y":[[0.1,0.2],[0.3,0.4]]}}"#
        );
    }

    /// `limits` with `max_batch_size` rows at most (0: no limit).
    fn with(max_tensor_elements: usize, max_decoded_bytes: usize, max_batch_size: usize) -> Limits {
        Limits {
            request: RequestLimits {
                max_tensor_elements,
                max_decoded_bytes,
            },
            max_batch_size,
        }
    }

    fn predict(body: &str, sig: &Signature, limits: Limits) -> Result<Vec<Tensor>, ProtocolError> {
        super::decode_predict(body.as_bytes(), sig, limits, &mut unlimited()).map(|(t, _)| t)
    }

    fn examples(body: &str, sig: &Signature, limits: Limits) -> Result<Vec<Tensor>, ProtocolError> {
        decode_examples(body.as_bytes(), sig, limits, &mut unlimited())
    }

    /// A reservation in a budget no test reaches.
    fn unlimited() -> Reservation {
        crate::budget::MemoryBudget::new(usize::MAX)
            .reserve(0)
            .unwrap()
    }

    #[test]
    fn shapes_come_from_the_nesting_and_scalars_and_strings_decode() {
        let sig = signature(&[("x", DataType::Fp32)]);
        let t = predict(
            "{\"inputs\": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]}",
            &sig,
            LIMITS,
        )
        .unwrap();
        assert_eq!(t[0].shape, [2, 2, 2]);
        let t = predict("{\"inputs\": 2.5}", &sig, LIMITS).unwrap();
        assert_eq!(
            (t[0].shape.as_slice(), t[0].data()),
            (&[][..], &TensorData::F32(vec![2.5]))
        );
        let t = predict("{\"instances\": [[], []]}", &sig, LIMITS).unwrap();
        assert_eq!(t[0].shape, [2, 0]);
        let TensorData::F32(v) = predict("{\"instances\": [\"NaN\", 1]}", &sig, LIMITS).unwrap()[0]
            .data()
            .clone()
        else {
            panic!()
        };
        assert!(v[0].is_nan() && v[1] == 1.0);

        let sig = signature(&[("s", DataType::Bytes)]);
        let t = predict(
            "{\"instances\": [{\"b64\": \"/w==\"}, \"a\"]}",
            &sig,
            LIMITS,
        )
        .unwrap();
        assert_eq!(
            t[0].data(),
            &TensorData::Bytes(vec![vec![0xff], b"a".to_vec()].into())
        );
        let t = predict("{\"inputs\": {\"b64\": \"/w==\"}}", &sig, LIMITS).unwrap();
        assert_eq!(
            (t[0].shape.len(), t[0].data()),
            (0, &TensorData::Bytes(vec![vec![0xff]].into()))
        );
        let err = predict("{\"instances\": [{\"b64\": 5}]}", &sig, LIMITS).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }

    /// A name the model does not have stops decoding where it stands: its value (here not
    /// even of the right type, and over the element limit) is never read.
    #[test]
    fn an_unknown_input_is_refused_before_its_data() {
        let sig = signature(&[("x", DataType::Fp32), ("y", DataType::Fp32)]);
        let junk = format!("[{}\"junk\"]", "1, ".repeat(5000));
        for body in [
            format!("{{\"inputs\": {{\"x\": [1], \"bogus\": {junk}}}}}"),
            format!("{{\"instances\": [{{\"bogus\": {junk}, \"x\": 1, \"y\": 1}}]}}"),
        ] {
            let err = predict(&body, &sig, LIMITS).unwrap_err().to_string();
            assert!(
                err.contains("no input 'bogus'") && err.contains(r#"["x", "y"]"#),
                "{err}"
            );
        }
        // Examples are tf.Example features: those the model does not take are skipped unread.
        for body in [
            format!("{{\"examples\": [{{\"bogus\": {junk}, \"x\": 1, \"y\": 2}}]}}"),
            format!(
                "{{\"context\": {{\"bogus\": {junk}, \"y\": 2}}, \"examples\": [{{\"x\": 1}}]}}"
            ),
        ] {
            let t = examples(&body, &sig, LIMITS).unwrap();
            assert_eq!(t[0].data(), &TensorData::F32(vec![1.0]));
            assert_eq!(t[1].data(), &TensorData::F32(vec![2.0]));
        }
    }

    /// Rows past `max_batch_size` are counted, not decoded (the fourth is not even a valid
    /// value), whatever the form.
    #[test]
    fn rows_beyond_the_max_batch_size_stop_the_decoding() {
        let sig = signature(&[("x", DataType::Fp32)]);
        let limits = with(1000, 1 << 20, 2);
        for body in [
            "{\"instances\": [[1], [2], [3], [\"junk\", {}], 5]}",
            "{\"instances\": [{\"x\": [1]}, {\"x\": [2]}, {\"x\": [3]}, 4, 5]}",
            "{\"inputs\": [[1], [2], [3], [\"junk\", {}], 5]}",
            "{\"inputs\": {\"x\": [[1], [2], [3], [\"junk\"], 5]}}",
        ] {
            let err = predict(body, &sig, limits).unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtocolError::Validation(ValidationError::BatchTooLarge {
                        max: 2,
                        got: 5,
                        ..
                    })
                ),
                "{body}: {err}"
            );
            assert!(err.to_string().contains("max_batch_size 2"), "{err}");
        }
        let err = examples("{\"examples\": [{}, {}, {}, 4]}", &sig, limits).unwrap_err();
        assert!(err.to_string().contains("batch size 4 exceeds"), "{err}");
        // Exactly the limit is fine.
        assert_eq!(
            predict("{\"instances\": [1, 2]}", &sig, limits).unwrap()[0].shape,
            [2]
        );
    }

    #[test]
    fn element_and_byte_limits_stop_the_decoding() {
        let sig = signature(&[("x", DataType::Fp32), ("y", DataType::Bytes)]);
        // 11 elements in one tensor, over a limit of 10: stopped at the 11th.
        let body = format!(
            "{{\"inputs\": {{\"x\": [{}1, \"junk\"], \"y\": \"a\"}}}}",
            "1, ".repeat(10)
        );
        let err = predict(&body, &sig, with(10, 1 << 20, 0)).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::Validation(ValidationError::TooManyElements {
                    limit: 10,
                    got: 11,
                    ..
                })
            ),
            "{err}"
        );
        // Decoded bytes of all tensors together: 4 FP32 (16 bytes) + "abcd" (4 + 4 bytes) = 24.
        let body = "{\"inputs\": {\"x\": [1, 2, 3, 4], \"y\": \"abcd\"}}";
        assert!(predict(body, &sig, with(10, 24, 0)).is_ok());
        let err = predict(body, &sig, with(10, 23, 0)).unwrap_err();
        assert!(
            matches!(err, ProtocolError::DecodedTooLarge { limit: 23, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("--max-request-bytes"), "{err}");
        // Rows count alike: 2 × 2 FP32 + 2 empty strings (4 bytes each) = 24.
        let body = "{\"instances\": [{\"x\": [1, 2], \"y\": \"\"}, {\"x\": [3, 4], \"y\": \"\"}]}";
        assert!(predict(body, &sig, with(10, 24, 0)).is_ok());
        assert!(predict(body, &sig, with(10, 23, 0)).is_err());
    }

    #[test]
    fn the_context_fills_in_what_an_example_lacks() {
        let sig = signature(&[("a", DataType::Int64), ("b", DataType::Fp32)]);
        let expect = |t: &[Tensor]| {
            assert_eq!(t[0].shape, [3, 2]);
            assert_eq!(t[0].data(), &TensorData::I64(vec![1, 2, 1, 2, 5, 6]));
            assert_eq!(t[1].shape, [3]);
            assert_eq!(t[1].data(), &TensorData::F32(vec![1.0, 7.0, 7.0]));
        };
        let examples_list = "[{\"b\": 1}, {}, {\"a\": [5, 6]}]";
        let context = "{\"a\": [1, 2], \"b\": 7}";
        // Before or after the examples.
        expect(
            &examples(
                &format!("{{\"context\": {context}, \"examples\": {examples_list}}}"),
                &sig,
                LIMITS,
            )
            .unwrap(),
        );
        expect(
            &examples(
                &format!("{{\"examples\": {examples_list}, \"context\": {context}}}"),
                &sig,
                LIMITS,
            )
            .unwrap(),
        );
        for (body, needle) in [
            (
                "{\"context\": {\"b\": 7}, \"examples\": [{\"a\": [1]}, {}]}",
                "examples[1] has no input 'a'",
            ),
            (
                "{\"examples\": [{\"a\": [1]}, {}], \"context\": {\"b\": 7}}",
                "examples[1] has no input 'a'",
            ),
            (
                "{\"context\": {\"a\": [1, 2], \"b\": 7}, \"examples\": [{\"a\": [1]}, {}]}",
                "ragged",
            ),
            (
                "{\"context\": {\"a\": [1], \"b\": 7}, \"examples\": []}",
                "\"examples\" is empty",
            ),
            ("{\"examples\": [[1]]}", "examples[0] must be an object"),
            ("{\"context\": {}}", "needs \"examples\""),
        ] {
            let err = examples(body, &sig, LIMITS).unwrap_err().to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn context_strings_and_empty_rows_fill_in_too() {
        let sig = signature(&[("s", DataType::Bytes), ("e", DataType::Fp32)]);
        let body = "{\"examples\": [{}, {\"s\": [\"own\"], \"e\": []}, {}], \
                    \"context\": {\"s\": [{\"b64\": \"/w==\"}], \"e\": []}}";
        let t = examples(body, &sig, LIMITS).unwrap();
        assert_eq!(t[0].shape, [3, 1]);
        assert_eq!(
            t[0].data(),
            &TensorData::Bytes(vec![vec![0xff], b"own".to_vec(), vec![0xff]].into())
        );
        assert_eq!((t[1].shape.as_slice(), t[1].len()), (&[3, 0][..], 0));
    }

    /// The context is held once: 20,000 examples sharing 10,000 context values are refused
    /// from the size they would repeat to, before anything is repeated, or at the 1025th
    /// example when the model batches 1024.
    #[test]
    fn the_context_is_shared_not_copied_per_example() {
        let sig = signature(&[("input", DataType::Fp32)]);
        let body = format!(
            "{{\"context\": {{\"input\": [{}0]}}, \"examples\": [{}{{}}]}}",
            "0,".repeat(9_999),
            "{},".repeat(19_999)
        );
        assert!(body.len() < 80 * 1024);
        let limits = with(16 << 20, 64 << 20, 0);
        let started = std::time::Instant::now();
        let err = examples(&body, &sig, limits).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::Validation(ValidationError::TooManyElements {
                    got: 200_000_000,
                    ..
                })
            ),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let err = examples(&body, &sig, with(16 << 20, 64 << 20, 1024)).unwrap_err();
        assert!(
            err.to_string().contains("batch size 20000 exceeds"),
            "{err}"
        );
        // Within the element limit but not the byte budget: refused before repeating.
        let err = examples(&body, &sig, with(usize::MAX, 64 << 20, 0)).unwrap_err();
        assert!(
            matches!(err, ProtocolError::DecodedTooLarge { .. }),
            "{err}"
        );
    }
}
