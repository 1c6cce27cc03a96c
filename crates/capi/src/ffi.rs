//! The C functions: each checks its pointers, runs the safe code of `handles` inside
//! [`guard`] (no panic unwinds into C) and reports failures through the status and
//! `ferroserve_last_error()`. cbindgen writes `include/ferroserve.h` from these declarations
//! and their documentation.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};
use std::ptr;

use crate::error::{self, Error, guard, guard_value};
use crate::handles::{FerroserveModel, FerroserveOutputs};
use crate::raw;
use crate::types::{FerroserveStatus, FerroserveTensor};

/// The library's version, `major.minor.patch`: a static string.
#[unsafe(no_mangle)]
pub extern "C" fn ferroserve_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(version) => version,
            Err(_) => panic!("the version has no NUL byte"),
        };
    guard_value("ferroserve_version", c"".as_ptr(), || VERSION.as_ptr())
}

/// Why the last failing call on this thread failed: a specific message naming the argument,
/// file or tensor at fault and what was expected. "" if no call has failed on this thread.
///
/// A successful call leaves the message of an earlier failure in place (as `errno` does), so
/// read it only after a call returned something other than `FERROSERVE_STATUS_OK`. The string
/// belongs to the library: it stays valid until the next ferroserve call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn ferroserve_last_error() -> *const c_char {
    guard_value("ferroserve_last_error", c"".as_ptr(), error::last_error)
}

/// The name of a status code, such as "INVALID_INPUT" ("UNKNOWN" for a code that is none):
/// a static string.
#[unsafe(no_mangle)]
pub extern "C" fn ferroserve_status_name(status: i32) -> *const c_char {
    guard_value("ferroserve_status_name", c"UNKNOWN".as_ptr(), || {
        let name = match status {
            0 => c"OK",
            1 => c"INVALID_ARGUMENT",
            2 => c"LOAD_FAILED",
            3 => c"INVALID_INPUT",
            4 => c"PREDICT_FAILED",
            5 => c"PANIC",
            _ => c"UNKNOWN",
        };
        name.as_ptr()
    })
}

/// Loads a model from the `len` bytes of a model file at `bytes`.
///
/// `format` names the file's format: "onnx", "xgboost" (JSON), "xgboost-ubj" (UBJSON) or
/// "lightgbm" (text), or a file name whose extension says it (".onnx", ".json", ".ubj",
/// ".txt"). NULL detects the format from the first bytes. The bytes are only read during the
/// call.
///
/// On success, `*out` is a new model, to be freed with `ferroserve_model_free`. On failure,
/// `*out` is NULL and the status is `FERROSERVE_STATUS_LOAD_FAILED` (not a valid model, or
/// its format not detected) or `FERROSERVE_STATUS_INVALID_ARGUMENT` (NULL `bytes` or `out`,
/// an unknown format name).
///
/// # Safety
/// `bytes` points to `len` readable bytes (or is NULL); `format` is NULL or a NUL-terminated
/// string; `out` is NULL or points to a writable `FerroserveModel *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_load(
    bytes: *const u8,
    len: usize,
    format: *const c_char,
    out: *mut *mut FerroserveModel,
) -> FerroserveStatus {
    guard("ferroserve_model_load", || {
        let out = raw::out(out, "out")?;
        // SAFETY: `out` is not NULL, and the caller vouches that it is writable.
        unsafe { out.write(ptr::null_mut()) };
        if bytes.is_null() {
            return Err(Error::invalid_argument("bytes is NULL"));
        }
        // SAFETY: the caller vouches for `len` bytes at `bytes`, read only during this call.
        let bytes = unsafe { raw::slice(bytes, len, "bytes") }?;
        // SAFETY: the caller vouches that a non-NULL `format` is a NUL-terminated string.
        let format = unsafe { raw::optional_c_str(format, "format") }?;
        let model = FerroserveModel::load(bytes, format)?;
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(Box::new(model))) };
        Ok(())
    })
}

/// Loads a model from the file at `path`.
///
/// `format` is as for `ferroserve_model_load`; NULL takes the format from the file name's
/// extension (".onnx", ".json", ".ubj", ".txt") or, failing that, from its first bytes.
/// Messages start with the path.
///
/// On success, `*out` is a new model, to be freed with `ferroserve_model_free`; on failure,
/// NULL.
///
/// # Safety
/// `path` and `format` are NULL or NUL-terminated strings; `out` is NULL or points to a
/// writable `FerroserveModel *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_load_file(
    path: *const c_char,
    format: *const c_char,
    out: *mut *mut FerroserveModel,
) -> FerroserveStatus {
    guard("ferroserve_model_load_file", || {
        let out = raw::out(out, "out")?;
        // SAFETY: `out` is not NULL, and the caller vouches that it is writable.
        unsafe { out.write(ptr::null_mut()) };
        // SAFETY: the caller vouches that a non-NULL `path` is a NUL-terminated string.
        let path = unsafe { raw::c_str(path, "path") }?;
        // SAFETY: the caller vouches that a non-NULL `format` is a NUL-terminated string.
        let format = unsafe { raw::optional_c_str(format, "format") }?;
        let model = FerroserveModel::load_file(path, format)?;
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(Box::new(model))) };
        Ok(())
    })
}

/// Frees a model and everything it owns (the strings and descriptions it handed out). NULL is
/// ignored. No other call may be using the model, and outputs already made stay valid.
///
/// # Safety
/// `model` is NULL or a model from `ferroserve_model_load` / `ferroserve_model_load_file`
/// that has not been freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_free(model: *mut FerroserveModel) {
    guard_value("ferroserve_model_free", (), || {
        if !model.is_null() {
            // SAFETY: the caller vouches that `model` came from `Box::into_raw` in this library
            // and is freed once, with no other call using it.
            drop(unsafe { Box::from_raw(model) });
        }
    });
}

/// The number of inputs the model takes (0 for a NULL model).
///
/// # Safety
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_input_count(model: *const FerroserveModel) -> usize {
    guard_value("ferroserve_model_input_count", 0, || {
        // SAFETY: the caller vouches that a non-NULL `model` is live.
        unsafe { model.as_ref() }.map_or(0, |m| m.inputs().len())
    })
}

/// The number of outputs the model returns (0 for a NULL model).
///
/// # Safety
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_output_count(model: *const FerroserveModel) -> usize {
    guard_value("ferroserve_model_output_count", 0, || {
        // SAFETY: the caller vouches that a non-NULL `model` is live.
        unsafe { model.as_ref() }.map_or(0, |m| m.outputs().len())
    })
}

/// Describes input `index` (0-based, in the model's order) in `*out`: its name, datatype and
/// shape, with -1 for a dynamic dimension; `data` is NULL and `byte_size` 0. The strings and
/// the shape belong to the model and stay valid until it is freed.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or points to a writable `FerroserveTensor`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_input(
    model: *const FerroserveModel,
    index: usize,
    out: *mut FerroserveTensor,
) -> FerroserveStatus {
    guard("ferroserve_model_input", || {
        // SAFETY: the caller vouches that a non-NULL `model` is live.
        let model = unsafe { raw::handle(model, "model") }?;
        let out = raw::out(out, "out")?;
        let view = FerroserveModel::describe(model.inputs(), "input", index)?;
        // SAFETY: `out` is not NULL, and the caller vouches that it is writable.
        unsafe { out.write(view) };
        Ok(())
    })
}

/// Describes output `index` (0-based, in the order `ferroserve_model_predict` returns them)
/// in `*out`, as `ferroserve_model_input` does for inputs.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or points to a writable `FerroserveTensor`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_output(
    model: *const FerroserveModel,
    index: usize,
    out: *mut FerroserveTensor,
) -> FerroserveStatus {
    guard("ferroserve_model_output", || {
        // SAFETY: the caller vouches that a non-NULL `model` is live.
        let model = unsafe { raw::handle(model, "model") }?;
        let out = raw::out(out, "out")?;
        let view = FerroserveModel::describe(model.outputs(), "output", index)?;
        // SAFETY: `out` is not NULL, and the caller vouches that it is writable.
        unsafe { out.write(view) };
        Ok(())
    })
}

/// The format the model was loaded as: "onnx", "xgboost", "xgboost-ubj" or "lightgbm" (NULL
/// for a NULL model). A static string.
///
/// # Safety
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_format(model: *const FerroserveModel) -> *const c_char {
    guard_value("ferroserve_model_format", ptr::null(), || {
        // SAFETY: the caller vouches that a non-NULL `model` is live.
        unsafe { model.as_ref() }.map_or(ptr::null(), |m| m.format().as_ptr())
    })
}

/// The engine that runs the model: "trees" (XGBoost, LightGBM), "onnx-ml" (ferroserve's
/// interpreter for scikit-learn and other ONNX-ML graphs) or "tract" (other ONNX graphs).
/// NULL for a NULL model; otherwise valid until the model is freed.
///
/// # Safety
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_engine(model: *const FerroserveModel) -> *const c_char {
    guard_value("ferroserve_model_engine", ptr::null(), || {
        // SAFETY: the caller vouches that a non-NULL `model` is live.
        unsafe { model.as_ref() }.map_or(ptr::null(), |m| m.engine().as_ptr())
    })
}

/// Runs the model on `input_count` tensors at `inputs`, given in any order, and sets `*out`
/// to its outputs (free them with `ferroserve_outputs_free`).
///
/// Each input needs its name, datatype, shape (every dimension >= 0) and data, whose
/// `byte_size` must be exactly the element count times the element size (for BYTES, the whole
/// V2 layout). The data is copied; it needs no particular alignment and may be freed as soon
/// as the call returns. The inputs are checked against the model's signature: a name the model
/// does not have, a missing input, a wrong datatype, shape or byte size is
/// `FERROSERVE_STATUS_INVALID_INPUT`, with a message naming the tensor. NULL `model`, `out`,
/// `inputs` (with `input_count` > 0), input name, or data with `byte_size` > 0 is
/// `FERROSERVE_STATUS_INVALID_ARGUMENT`.
///
/// Safe to call from several threads at once on one model. On failure `*out` is NULL.
///
/// # Safety
/// `model` is NULL or a live model; `inputs` is NULL or points to `input_count`
/// `FerroserveTensor`s whose pointers are valid as they state (see `FerroserveTensor`) for the
/// duration of the call; `out` is NULL or points to a writable `FerroserveOutputs *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_model_predict(
    model: *const FerroserveModel,
    inputs: *const FerroserveTensor,
    input_count: usize,
    out: *mut *mut FerroserveOutputs,
) -> FerroserveStatus {
    guard("ferroserve_model_predict", || {
        let out = raw::out(out, "out")?;
        // SAFETY: `out` is not NULL, and the caller vouches that it is writable.
        unsafe { out.write(ptr::null_mut()) };
        // SAFETY: the caller vouches that a non-NULL `model` is live.
        let model = unsafe { raw::handle(model, "model") }?;
        if inputs.is_null() && input_count > 0 {
            return Err(Error::invalid_argument(format!(
                "inputs is NULL but input_count is {input_count}"
            )));
        }
        let tensors = (0..input_count)
            .map(|i| {
                // SAFETY: `inputs` is not NULL (checked above, `input_count` > 0 here) and the
                // caller vouches for `input_count` valid descriptions there, so element `i` is
                // in bounds; `raw::input_tensor` needs exactly what the caller vouches for.
                unsafe { raw::input_tensor(inputs.add(i), i) }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = model.predict(tensors)?;
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(Box::new(outputs))) };
        Ok(())
    })
}

/// The number of outputs (0 for NULL).
///
/// # Safety
/// `outputs` is NULL or live outputs from `ferroserve_model_predict`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_outputs_count(outputs: *const FerroserveOutputs) -> usize {
    guard_value("ferroserve_outputs_count", 0, || {
        // SAFETY: the caller vouches that non-NULL `outputs` are live.
        unsafe { outputs.as_ref() }.map_or(0, FerroserveOutputs::len)
    })
}

/// Sets `*out` to output `index` (0-based, in the model's output order): its name, datatype,
/// shape and data, all owned by `outputs` and valid until they are freed. The data is aligned
/// for its element type (BYTES: the V2 layout, read its lengths with `memcpy`).
///
/// # Safety
/// `outputs` is NULL or live outputs; `out` is NULL or points to a writable
/// `FerroserveTensor`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_outputs_get(
    outputs: *const FerroserveOutputs,
    index: usize,
    out: *mut FerroserveTensor,
) -> FerroserveStatus {
    guard("ferroserve_outputs_get", || {
        // SAFETY: the caller vouches that non-NULL `outputs` are live.
        let outputs = unsafe { raw::handle(outputs, "outputs") }?;
        let out = raw::out(out, "out")?;
        let view = outputs.get(index)?.view();
        // SAFETY: `out` is not NULL, and the caller vouches that it is writable.
        unsafe { out.write(view) };
        Ok(())
    })
}

/// Sets `*out` to the output called `name`, as `ferroserve_outputs_get` does;
/// `FERROSERVE_STATUS_INVALID_ARGUMENT` if there is none (the message lists the outputs).
///
/// # Safety
/// `outputs` is NULL or live outputs; `name` is NULL or a NUL-terminated string; `out` is
/// NULL or points to a writable `FerroserveTensor`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_outputs_find(
    outputs: *const FerroserveOutputs,
    name: *const c_char,
    out: *mut FerroserveTensor,
) -> FerroserveStatus {
    guard("ferroserve_outputs_find", || {
        // SAFETY: the caller vouches that non-NULL `outputs` are live.
        let outputs = unsafe { raw::handle(outputs, "outputs") }?;
        // SAFETY: the caller vouches that a non-NULL `name` is a NUL-terminated string.
        let name = unsafe { raw::c_str(name, "name") }?;
        let out = raw::out(out, "out")?;
        let view = outputs.find(name)?.view();
        // SAFETY: `out` is not NULL, and the caller vouches that it is writable.
        unsafe { out.write(view) };
        Ok(())
    })
}

/// Frees outputs and their data. NULL is ignored.
///
/// # Safety
/// `outputs` is NULL or outputs from `ferroserve_model_predict` that have not been freed yet,
/// and no other call is reading them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferroserve_outputs_free(outputs: *mut FerroserveOutputs) {
    guard_value("ferroserve_outputs_free", (), || {
        if !outputs.is_null() {
            // SAFETY: the caller vouches that `outputs` came from `Box::into_raw` in this
            // library and is freed once, with no other call using it.
            drop(unsafe { Box::from_raw(outputs) });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FerroserveDataType;
    use std::ffi::CString;

    fn last_error() -> String {
        // SAFETY: `ferroserve_last_error` returns a NUL-terminated string valid until the next
        // call on this thread; it is copied at once.
        unsafe { CStr::from_ptr(ferroserve_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_model_round_trips_through_the_c_functions() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/trees/xgboost/multi_softprob/model.json"
        );
        let path = CString::new(path).unwrap();
        let mut model = ptr::null_mut();
        // SAFETY: valid strings and out-pointer; every handle below is freed exactly once.
        unsafe {
            let status = ferroserve_model_load_file(path.as_ptr(), ptr::null(), &mut model);
            assert_eq!(status, FerroserveStatus::Ok, "{}", last_error());
            assert_eq!(ferroserve_model_input_count(model), 1);
            assert_eq!(ferroserve_model_output_count(model), 2);
            assert_eq!(CStr::from_ptr(ferroserve_model_engine(model)), c"trees");

            let mut spec = std::mem::zeroed::<FerroserveTensor>();
            assert_eq!(
                ferroserve_model_input(model, 0, &mut spec),
                FerroserveStatus::Ok
            );
            assert_eq!(CStr::from_ptr(spec.name), c"input");
            assert_eq!(std::slice::from_raw_parts(spec.shape, spec.rank), [-1, 4]);

            // Unaligned input data: one byte into the buffer.
            let mut buffer = [0u8; 1 + 8 * 4];
            for (i, chunk) in buffer[1..].chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&(i as f32 * 0.25).to_ne_bytes());
            }
            let shape = [2i64, 4];
            let input = FerroserveTensor {
                name: c"input".as_ptr(),
                datatype: FerroserveDataType::Fp32,
                shape: shape.as_ptr(),
                rank: 2,
                data: buffer[1..].as_ptr().cast(),
                byte_size: 32,
            };
            let mut outputs = ptr::null_mut();
            let status = ferroserve_model_predict(model, &input, 1, &mut outputs);
            assert_eq!(status, FerroserveStatus::Ok, "{}", last_error());
            ferroserve_model_free(model);

            let mut out = std::mem::zeroed::<FerroserveTensor>();
            let status = ferroserve_outputs_find(outputs, c"probabilities".as_ptr(), &mut out);
            assert_eq!(status, FerroserveStatus::Ok);
            assert_eq!(out.datatype, FerroserveDataType::Fp32);
            assert_eq!(std::slice::from_raw_parts(out.shape, out.rank), [2, 3]);
            let p = std::slice::from_raw_parts(out.data.cast::<f32>(), 6);
            for row in p.chunks(3) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            }
            ferroserve_outputs_free(outputs);
        }
    }

    #[test]
    fn null_arguments_are_refused_with_a_message() {
        let mut model = ptr::null_mut();
        // SAFETY: NULL is what is being tested; the other pointers are valid.
        unsafe {
            let status = ferroserve_model_load(ptr::null(), 4, ptr::null(), &mut model);
            assert_eq!(status, FerroserveStatus::InvalidArgument);
            assert_eq!(last_error(), "bytes is NULL");
            let status = ferroserve_model_load(b"{}".as_ptr(), 2, ptr::null(), ptr::null_mut());
            assert_eq!(status, FerroserveStatus::InvalidArgument);
            assert_eq!(last_error(), "out is NULL");
            let status =
                ferroserve_model_predict(ptr::null(), ptr::null(), 0, &mut ptr::null_mut());
            assert_eq!(status, FerroserveStatus::InvalidArgument);
            assert_eq!(last_error(), "model is NULL");
            assert_eq!(ferroserve_outputs_count(ptr::null()), 0);
            assert!(ferroserve_model_format(ptr::null()).is_null());
            ferroserve_model_free(ptr::null_mut());
            ferroserve_outputs_free(ptr::null_mut());
            assert_eq!(CStr::from_ptr(ferroserve_status_name(3)), c"INVALID_INPUT");
            assert_eq!(CStr::from_ptr(ferroserve_status_name(42)), c"UNKNOWN");
            assert!(!CStr::from_ptr(ferroserve_version()).is_empty());
        }
    }
}
