//! [`Error`]: a status with its message; the thread-local last-error message C reads with
//! `ferroserve_last_error()`; and [`guard`] / [`guard_value`], which run an extern function's
//! body, catch any panic and record the message of a failure.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use ferroserve_core::ModelError;
use ferroserve_loader::EmbedError;

use crate::types::FerroserveStatus;

/// A failed call: the status returned to C and the message `ferroserve_last_error()` gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The status the call returns.
    pub status: FerroserveStatus,
    /// What went wrong, naming the argument or tensor at fault.
    pub message: String,
}

impl Error {
    /// An error with `status` and `message`.
    pub fn new(status: FerroserveStatus, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// A malformed call (`FERROSERVE_STATUS_INVALID_ARGUMENT`).
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(FerroserveStatus::InvalidArgument, message)
    }

    /// Inputs that do not fit (`FERROSERVE_STATUS_INVALID_INPUT`).
    pub fn invalid_input(message: impl Into<String>) -> Error {
        Error::new(FerroserveStatus::InvalidInput, message)
    }

    /// A model that did not load (`FERROSERVE_STATUS_LOAD_FAILED`).
    pub fn load_failed(message: impl Into<String>) -> Error {
        Error::new(FerroserveStatus::LoadFailed, message)
    }

    /// The same error with `context` (a file path, say) in front of its message.
    pub fn context(self, context: &str) -> Error {
        Error {
            status: self.status,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl From<EmbedError> for Error {
    fn from(error: EmbedError) -> Error {
        let status = match &error {
            EmbedError::UnknownFormat(_) => FerroserveStatus::InvalidArgument,
            EmbedError::UndetectedFormat | EmbedError::Load { .. } | EmbedError::Unsupported(_) => {
                FerroserveStatus::LoadFailed
            }
            EmbedError::Input { .. } | EmbedError::Invalid(_) => FerroserveStatus::InvalidInput,
            // The model's own check of an input's datatype: still the caller's input at fault.
            EmbedError::Model(ModelError::UnsupportedDatatype { .. }) => {
                FerroserveStatus::InvalidInput
            }
            EmbedError::Model(_) => FerroserveStatus::PredictFailed,
        };
        Error::new(status, error.to_string())
    }
}

thread_local! {
    /// The message of the last failed call on this thread.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `message` as this thread's last error (interior NULs, which C cannot see past,
/// become spaces).
pub fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // `try_with`: a call made while the thread's locals are being destroyed records nothing.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(message));
}

/// The last error recorded on this thread, as C reads it: a pointer that stays valid until the
/// next failed call on this thread replaces it (or the thread ends); `""` when none failed yet.
pub fn last_error() -> *const c_char {
    const NONE: &CStr = c"";
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ref().map(|m| m.as_ptr()))
        .ok()
        .flatten()
        .unwrap_or(NONE.as_ptr())
}

/// This thread's last error as a Rust string, for tests.
pub fn last_error_message() -> String {
    LAST_ERROR
        .try_with(|slot| {
            slot.borrow()
                .as_ref()
                .map(|m| m.to_string_lossy().into_owned())
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The text of a panic's payload, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Runs the body of an extern function that returns a status: `OK` when it succeeds; its
/// error's status otherwise, with the message recorded for `ferroserve_last_error()`; `PANIC`
/// when it panics (caught here, so that no unwinding crosses into C).
pub fn guard(function: &str, body: impl FnOnce() -> Result<(), Error>) -> FerroserveStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => FerroserveStatus::Ok,
        Ok(Err(error)) => {
            set_last_error(&error.message);
            error.status
        }
        Err(payload) => {
            set_last_error(&format!(
                "{function}: a Rust panic was caught inside ferroserve: {}",
                panic_message(payload.as_ref())
            ));
            FerroserveStatus::Panic
        }
    }
}

/// Runs the body of an extern function that returns a value rather than a status (a count, a
/// string): its value, or `fallback` if it panics (the panic's message is recorded).
pub fn guard_value<T>(function: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            set_last_error(&format!(
                "{function}: a Rust panic was caught inside ferroserve: {}",
                panic_message(payload.as_ref())
            ));
            fallback
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::{DataType, ValidationError};

    #[test]
    fn embed_errors_map_to_their_statuses() {
        let cases = [
            (
                EmbedError::UnknownFormat("pickle".into()),
                FerroserveStatus::InvalidArgument,
            ),
            (EmbedError::UndetectedFormat, FerroserveStatus::LoadFailed),
            (
                EmbedError::Load {
                    format: "onnx",
                    message: "truncated".into(),
                },
                FerroserveStatus::LoadFailed,
            ),
            (
                EmbedError::Unsupported("no tract".into()),
                FerroserveStatus::LoadFailed,
            ),
            (
                EmbedError::Input {
                    tensor: "x".into(),
                    message: "no such input".into(),
                },
                FerroserveStatus::InvalidInput,
            ),
            (
                EmbedError::Invalid(ValidationError::Datatype {
                    tensor: "x".into(),
                    expected: DataType::Fp32,
                    got: DataType::Int64,
                }),
                FerroserveStatus::InvalidInput,
            ),
            (
                EmbedError::Model(ModelError::Execution {
                    message: "out of memory".into(),
                }),
                FerroserveStatus::PredictFailed,
            ),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            let mapped = Error::from(error);
            assert_eq!(mapped.status, status, "{text}");
            assert_eq!(mapped.message, text);
        }
    }

    #[test]
    fn guard_records_failures_and_catches_panics() {
        assert_eq!(guard("f", || Ok(())), FerroserveStatus::Ok);
        let status = guard("f", || Err(Error::invalid_input("input 'x': too short")));
        assert_eq!(status, FerroserveStatus::InvalidInput);
        assert_eq!(last_error_message(), "input 'x': too short");
        // A success leaves the last failure's message in place, as errno does.
        assert_eq!(guard("f", || Ok(())), FerroserveStatus::Ok);
        assert_eq!(last_error_message(), "input 'x': too short");
        let status = guard("ferroserve_thing", || panic!("boom {}", 7));
        assert_eq!(status, FerroserveStatus::Panic);
        let message = last_error_message();
        assert!(
            message.contains("ferroserve_thing") && message.contains("boom 7"),
            "{message}"
        );
        assert_eq!(guard_value("g", 0usize, || panic!("bang")), 0);
        assert!(last_error_message().contains("bang"));
        assert_eq!(guard_value("g", 0usize, || 3), 3);
    }

    #[test]
    fn messages_with_nul_bytes_survive() {
        set_last_error("a\0b");
        assert_eq!(last_error_message(), "a b");
    }
}
