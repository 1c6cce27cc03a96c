//! [`Format`]: which kind of model file a byte buffer holds, named by the caller or detected.

use crate::error::EmbedError;

/// The model file formats the embedding builds load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ONNX (`model.onnx`): ONNX-ML graphs (scikit-learn, converted trees) on ferroserve's own
    /// interpreter, other graphs on tract.
    Onnx,
    /// XGBoost JSON (`model.json`).
    XgboostJson,
    /// XGBoost UBJSON (`model.ubj`).
    XgboostUbjson,
    /// LightGBM text (`model.txt`).
    LightGbm,
}

impl Format {
    /// The format called `name`: `onnx`, `xgboost` / `xgboost-json`, `xgboost-ubj`,
    /// `lightgbm`; a file name's extension (`.onnx`, `.json`, `.ubj`, `.txt`) also works.
    pub fn parse(name: &str) -> Result<Format, EmbedError> {
        let lower = name.to_ascii_lowercase();
        let format = match lower.as_str() {
            "onnx" => Format::Onnx,
            "xgboost" | "xgboost-json" | "json" => Format::XgboostJson,
            "xgboost-ubj" | "xgboost-ubjson" | "ubj" => Format::XgboostUbjson,
            "lightgbm" | "txt" => Format::LightGbm,
            _ => {
                return Format::from_file_name(&lower)
                    .ok_or(EmbedError::UnknownFormat(name.into()));
            }
        };
        Ok(format)
    }

    /// The format a file name's extension says, if it says one.
    pub fn from_file_name(name: &str) -> Option<Format> {
        let (_, extension) = name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "onnx" => Some(Format::Onnx),
            "json" => Some(Format::XgboostJson),
            "ubj" => Some(Format::XgboostUbjson),
            "txt" => Some(Format::LightGbm),
            _ => None,
        }
    }

    /// The format the first bytes show: a JSON object, a UBJSON object (`{` then a type
    /// marker), LightGBM's `tree` / `version=` header, or else an ONNX protobuf (whose first
    /// field is `ir_version`, tag byte `0x08`).
    pub fn detect(bytes: &[u8]) -> Option<Format> {
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
        let head = &bytes[start..];
        match head {
            [b'{', b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t', ..] => Some(Format::XgboostJson),
            [b'{', ..] => Some(Format::XgboostUbjson),
            _ if head.starts_with(b"tree\n") || head.starts_with(b"tree\r\n") => {
                Some(Format::LightGbm)
            }
            _ if head.starts_with(b"version=") => Some(Format::LightGbm),
            [0x08, ..] if start == 0 => Some(Format::Onnx),
            _ => None,
        }
    }

    /// The name [`Format::parse`] takes, as shown in messages and signatures.
    pub fn name(self) -> &'static str {
        match self {
            Format::Onnx => "onnx",
            Format::XgboostJson => "xgboost",
            Format::XgboostUbjson => "xgboost-ubj",
            Format::LightGbm => "lightgbm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_extensions_parse() {
        assert_eq!(Format::parse("ONNX").unwrap(), Format::Onnx);
        assert_eq!(Format::parse("xgboost").unwrap(), Format::XgboostJson);
        assert_eq!(Format::parse("model.ubj").unwrap(), Format::XgboostUbjson);
        assert_eq!(Format::parse("lightgbm").unwrap(), Format::LightGbm);
        let err = Format::parse("pickle").unwrap_err().to_string();
        assert!(
            err.contains("'pickle'") && err.contains("lightgbm"),
            "{err}"
        );
    }

    #[test]
    fn formats_are_detected_from_their_first_bytes() {
        assert_eq!(
            Format::detect(b" {\"learner\": {}}"),
            Some(Format::XgboostJson)
        );
        assert_eq!(
            Format::detect(b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner"),
            Some(Format::XgboostUbjson)
        );
        assert_eq!(
            Format::detect(b"tree\nversion=v4\n"),
            Some(Format::LightGbm)
        );
        assert_eq!(
            Format::detect(b"\x08\x08\x12\x07skl2onnx"),
            Some(Format::Onnx)
        );
        assert_eq!(Format::detect(b"PK\x03\x04"), None);
        assert_eq!(Format::detect(b""), None);
    }
}
