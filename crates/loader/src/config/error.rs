//! [`ConfigError`]: why a `model.toml` was refused, naming the file and the key.

use std::path::PathBuf;

/// A `model.toml` that cannot be read, is not valid TOML, has an unknown key or a value out of
/// range. The message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A model's settings: not TOML, an unknown key, a wrong type or a value out of range.
    #[error("{}: {message}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A composite's spec (the file has a `kind`): an unknown kind or key, a wrong type or a
    /// value out of range.
    #[error("{}: {message}", path.display())]
    Composite {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}
