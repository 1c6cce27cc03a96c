//! ONNX string tensors, which both engines fill from V2 BYTES elements.

use ferroserve_core::{ByteStrings, ModelError};

/// BYTES elements of input `name` as the UTF-8 strings ONNX string tensors hold (both engines).
pub(crate) fn utf8_strings(name: &str, elements: &ByteStrings) -> Result<Vec<String>, ModelError> {
    elements
        .iter()
        .map(|b| String::from_utf8(b.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Execution {
            message: format!(
                "input '{name}': BYTES element is not UTF-8 ({e}); ONNX string tensors must be"
            ),
        })
}
