//! [`ByteStrings`]: the elements of a `BYTES` tensor held as one buffer with offsets, so a
//! tensor of a million short strings is two allocations rather than a million (a `Vec<u8>`
//! per element costs 24 bytes and an allocation even when the string is empty); and their
//! KServe V2 binary layout (each element a 4-byte little-endian length, then its bytes), the
//! one codec the HTTP binary extension, gRPC raw contents and the C library share.

use std::fmt;
use std::ops::Index;

/// Byte strings back to back in one buffer, with where each ends.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ByteStrings {
    /// Every element's bytes, in order.
    bytes: Vec<u8>,
    /// Where each element ends in `bytes` (element `i` is `ends[i-1]..ends[i]`).
    ends: Vec<usize>,
}

impl ByteStrings {
    /// No elements.
    pub fn new() -> ByteStrings {
        ByteStrings::default()
    }

    /// No elements, with room for `elements` of `bytes` bytes in all.
    pub fn with_capacity(elements: usize, bytes: usize) -> ByteStrings {
        ByteStrings {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(elements),
        }
    }

    /// Appends one element.
    pub fn push(&mut self, element: impl AsRef<[u8]>) {
        self.bytes.extend_from_slice(element.as_ref());
        self.ends.push(self.bytes.len());
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of every element together.
    pub fn total_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Element `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.bytes[start..end])
    }

    /// The elements in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            strings: self,
            next: 0,
        }
    }

    /// Appends every element of `other`.
    pub fn extend_from(&mut self, other: &ByteStrings) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|&end| base + end));
    }

    /// A copy of elements `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> ByteStrings {
        let from = if start == 0 { 0 } else { self.ends[start - 1] };
        let to = if end == 0 { 0 } else { self.ends[end - 1] };
        ByteStrings {
            bytes: self.bytes[from..to].to_vec(),
            ends: self.ends[start..end].iter().map(|&e| e - from).collect(),
        }
    }

    /// Appends elements `start..end` of `other`.
    pub fn extend_from_range(&mut self, other: &ByteStrings, start: usize, end: usize) {
        let from = if start == 0 { 0 } else { other.ends[start - 1] };
        let to = if end == 0 { 0 } else { other.ends[end - 1] };
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes[from..to]);
        self.ends
            .extend(other.ends[start..end].iter().map(|&e| base + e - from));
    }

    /// `n` empty elements appended.
    pub fn push_empty(&mut self, n: usize) {
        let end = self.bytes.len();
        self.ends.resize(self.ends.len() + n, end);
    }
}

/// Why bytes are not `count` elements in the V2 binary layout.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// An element's 4-byte length prefix is cut off.
    #[error("element {element}'s length prefix is cut off at byte {at}")]
    PrefixCutOff {
        /// The element.
        element: usize,
        /// Where, in the bytes.
        at: usize,
    },
    /// An element is longer than the bytes left.
    #[error("element {element} is {length} bytes long but only {left} remain")]
    ElementCutOff {
        /// The element.
        element: usize,
        /// Its length prefix.
        length: usize,
        /// Bytes left after the prefix.
        left: usize,
    },
    /// Bytes follow the last element.
    #[error("{extra} bytes are left over after the last element")]
    LeftOver {
        /// How many.
        extra: usize,
    },
    /// An element is too long for a 4-byte length.
    #[error(
        "element {element} is {length} bytes, more than the V2 layout's 4-byte length can hold"
    )]
    TooLong {
        /// The element.
        element: usize,
        /// Its length.
        length: usize,
    },
}

impl ByteStrings {
    /// Reads exactly `count` elements in the V2 binary layout, into one buffer.
    pub fn from_length_prefixed(bytes: &[u8], count: usize) -> Result<ByteStrings, LayoutError> {
        // Each element takes at least its 4-byte prefix: never reserve past what `bytes` holds.
        let mut out = ByteStrings::with_capacity(count.min(bytes.len() / 4), bytes.len());
        let mut rest = bytes;
        for element in 0..count {
            let Some((length, tail)) = rest.split_first_chunk::<4>() else {
                return Err(LayoutError::PrefixCutOff {
                    element,
                    at: bytes.len() - rest.len(),
                });
            };
            let length = u32::from_le_bytes(*length) as usize;
            if length > tail.len() {
                return Err(LayoutError::ElementCutOff {
                    element,
                    length,
                    left: tail.len(),
                });
            }
            let (bytes, tail) = tail.split_at(length);
            out.push(bytes);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(LayoutError::LeftOver { extra: rest.len() });
        }
        Ok(out)
    }

    /// Appends the elements to `out` in the V2 binary layout.
    pub fn write_length_prefixed(&self, out: &mut Vec<u8>) -> Result<(), LayoutError> {
        out.reserve(4 * self.len() + self.total_bytes());
        for (element, bytes) in self.iter().enumerate() {
            let length = u32::try_from(bytes.len()).map_err(|_| LayoutError::TooLong {
                element,
                length: bytes.len(),
            })?;
            out.extend_from_slice(&length.to_le_bytes());
            out.extend_from_slice(bytes);
        }
        Ok(())
    }
}

impl Index<usize> for ByteStrings {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        match self.get(i) {
            Some(element) => element,
            None => panic!("element {i} of {} byte strings", self.len()),
        }
    }
}

/// The elements of a [`ByteStrings`], in order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    strings: &'a ByteStrings,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let element = self.strings.get(self.next)?;
        self.next += 1;
        Some(element)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.strings.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ByteStrings {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for ByteStrings {
    fn from_iter<I: IntoIterator<Item = T>>(elements: I) -> ByteStrings {
        let mut strings = ByteStrings::new();
        for element in elements {
            strings.push(element);
        }
        strings
    }
}

impl<T: AsRef<[u8]>> From<Vec<T>> for ByteStrings {
    fn from(elements: Vec<T>) -> ByteStrings {
        elements.into_iter().collect()
    }
}

impl fmt::Debug for ByteStrings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_keep_their_bounds_through_slices_and_appends() {
        let mut s: ByteStrings = ["ab", "", "cde"].into_iter().collect();
        assert_eq!(s.len(), 3);
        assert_eq!(&s[0], b"ab");
        assert_eq!(&s[1], b"");
        assert_eq!(s.get(2), Some(&b"cde"[..]));
        assert_eq!(s.get(3), None);
        assert_eq!(s.total_bytes(), 5);
        let tail = s.slice(1, 3);
        assert_eq!(tail.iter().collect::<Vec<_>>(), [&b""[..], b"cde"]);
        assert_eq!(s.slice(0, 0), ByteStrings::new());
        s.extend_from(&tail);
        s.push_empty(2);
        assert_eq!(
            s.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [2, 0, 3, 0, 3, 0, 0]
        );
        assert_eq!(format!("{:?}", s.slice(0, 2)), r#"["ab", ""]"#);
    }

    #[test]
    fn the_v2_layout_round_trips_and_names_what_is_cut_off() {
        let s: ByteStrings = ["ab", "", "c"].into_iter().collect();
        let mut bytes = Vec::new();
        s.write_length_prefixed(&mut bytes).unwrap();
        assert_eq!(bytes, b"\x02\0\0\0ab\0\0\0\0\x01\0\0\0c");
        assert_eq!(ByteStrings::from_length_prefixed(&bytes, 3).unwrap(), s);
        let err =
            |bytes: &[u8], count| ByteStrings::from_length_prefixed(bytes, count).unwrap_err();
        assert_eq!(err(&bytes, 2), LayoutError::LeftOver { extra: 5 });
        assert_eq!(
            err(&bytes, 4),
            LayoutError::PrefixCutOff { element: 3, at: 15 }
        );
        assert_eq!(
            err(&bytes[..14], 3),
            LayoutError::ElementCutOff {
                element: 2,
                length: 1,
                left: 0
            }
        );
        // A huge count with few bytes reserves nothing like `count` elements.
        assert!(ByteStrings::from_length_prefixed(b"\0\0", usize::MAX).is_err());
    }
}
