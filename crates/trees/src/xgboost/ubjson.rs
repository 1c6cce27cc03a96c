//! Universal Binary JSON (the format of XGBoost's `model.ubj`) into a `serde_json::Value`, so
//! one reader serves both of XGBoost's model formats.
//!
//! Written by hand: the format is small (big-endian numbers, length-prefixed strings, optional
//! typed and counted containers), and no maintained crate reads it into serde.

use serde_json::{Map, Number, Value};

use super::FormatError;

/// Deepest nesting accepted; XGBoost models use 6 levels.
const MAX_DEPTH: usize = 64;

/// Parses one UBJSON value filling `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Value, FormatError> {
    let mut reader = Reader { bytes, pos: 0 };
    let marker = reader.marker()?;
    let value = reader.value(marker, 0)?;
    if reader.pos != bytes.len() {
        return Err(reader.error(&format!(
            "{} bytes after the top-level value",
            bytes.len() - reader.pos
        )));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, message: &str) -> FormatError {
        FormatError(format!(
            "not a UBJSON model at byte {}: {message}",
            self.pos
        ))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error(&format!("needs {n} more bytes but the file ends")));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn marker(&mut self) -> Result<u8, FormatError> {
        loop {
            let m = self.take(1)?[0];
            if m != b'N' {
                return Ok(m);
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    /// An integer introduced by `marker` (lengths and counts).
    fn integer(&mut self, marker: u8) -> Result<i64, FormatError> {
        Ok(match marker {
            b'i' => i8::from_be_bytes(self.array()?) as i64,
            b'U' => u8::from_be_bytes(self.array()?) as i64,
            b'I' => i16::from_be_bytes(self.array()?) as i64,
            b'l' => i32::from_be_bytes(self.array()?) as i64,
            b'L' => i64::from_be_bytes(self.array()?),
            other => {
                return Err(self.error(&format!(
                    "expected an integer marker, got {:?}",
                    other as char
                )));
            }
        })
    }

    fn length(&mut self) -> Result<usize, FormatError> {
        let marker = self.marker()?;
        let n = self.integer(marker)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| self.error(&format!("length {n} is negative or beyond the file")))
    }

    fn string(&mut self) -> Result<String, FormatError> {
        let n = self.length()?;
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes).map_err(|_| self.error("string is not UTF-8"))
    }

    fn float(v: f64) -> Value {
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }

    fn value(&mut self, marker: u8, depth: usize) -> Result<Value, FormatError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::from(self.integer(marker)?),
            b'd' => Self::float(f32::from_be_bytes(self.array()?) as f64),
            b'D' => Self::float(f64::from_be_bytes(self.array()?)),
            b'C' => Value::String((self.take(1)?[0] as char).to_string()),
            b'S' | b'H' => Value::String(self.string()?),
            b'[' => {
                let (typed, count) = self.container_header()?;
                let mut items = Vec::with_capacity(count.unwrap_or(0).min(1 << 16));
                match count {
                    Some(n) => {
                        for _ in 0..n {
                            let m = match typed {
                                Some(t) => t,
                                None => self.marker()?,
                            };
                            items.push(self.value(m, depth + 1)?);
                        }
                    }
                    None => loop {
                        let m = self.marker()?;
                        if m == b']' {
                            break;
                        }
                        items.push(self.value(m, depth + 1)?);
                    },
                }
                Value::Array(items)
            }
            b'{' => {
                let (typed, count) = self.container_header()?;
                let mut map = Map::new();
                match count {
                    Some(n) => {
                        for _ in 0..n {
                            let key = self.string()?;
                            let m = match typed {
                                Some(t) => t,
                                None => self.marker()?,
                            };
                            map.insert(key, self.value(m, depth + 1)?);
                        }
                    }
                    None => loop {
                        if self.peek() == Some(b'}') {
                            self.pos += 1;
                            break;
                        }
                        let key = self.string()?;
                        let m = self.marker()?;
                        map.insert(key, self.value(m, depth + 1)?);
                    },
                }
                Value::Object(map)
            }
            other => return Err(self.error(&format!("unknown marker {:?}", other as char))),
        })
    }

    /// The optional `$type` and `#count` after a container's opening marker.
    fn container_header(&mut self) -> Result<(Option<u8>, Option<usize>), FormatError> {
        let mut typed = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            typed = Some(self.take(1)?[0]);
            if self.peek() != Some(b'#') {
                return Err(self.error("a typed container needs a count"));
            }
        }
        let count = if self.peek() == Some(b'#') {
            self.pos += 1;
            Some(self.length()?)
        } else {
            None
        };
        Ok((typed, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_typed_counted_and_open_containers() {
        let mut b = vec![b'{', b'#', b'U', 2];
        b.extend([b'U', 1, b'a', b'[', b'$', b'd', b'#', b'U', 2]);
        b.extend(1.5f32.to_be_bytes());
        b.extend((-2.0f32).to_be_bytes());
        b.extend([b'U', 1, b'b', b'[', b'S', b'U', 2, b'h', b'i', b'T', b'l']);
        b.extend(7i32.to_be_bytes());
        b.push(b']');
        assert_eq!(
            parse(&b).unwrap(),
            json!({"a": [1.5, -2.0], "b": ["hi", true, 7]})
        );
    }

    #[test]
    fn rejects_truncation_and_unknown_markers() {
        assert!(
            parse(&[b'[', b'$', b'd', b'#', b'U', 3, 0, 0])
                .unwrap_err()
                .0
                .contains("ends")
        );
        assert!(parse(b"X").unwrap_err().0.contains("unknown marker"));
        assert!(parse(&[b'[', b'#', b'L', 0x7f, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
