//! Reading what C's pointers point to: strings, byte buffers and input tensor descriptions,
//! each NULL-checked and turned into safe Rust values (or an [`Error`] naming the argument).
//! These helpers are `unsafe`: their callers vouch that non-NULL pointers are valid.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};

use ferroserve_core::{DataType, Tensor};

use crate::convert::decode_tensor;
use crate::error::Error;
use crate::types::{FerroserveDataType, FerroserveTensor};

/// The UTF-8 string at `ptr`, which `what` names in messages; NULL is an error.
///
/// # Safety
/// A non-NULL `ptr` points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Error> {
    // SAFETY: passed on from the caller.
    unsafe { optional_c_str(ptr, what) }?
        .ok_or_else(|| Error::invalid_argument(format!("{what} is NULL")))
}

/// The UTF-8 string at `ptr`, or `None` for NULL.
///
/// # Safety
/// As for [`c_str`].
pub unsafe fn optional_c_str<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: `ptr` is not NULL, and the caller vouches that it points to a NUL-terminated
    // string valid for `'a`.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map(Some).map_err(|e| {
        Error::invalid_argument(format!(
            "{what} is not valid UTF-8 ({e}): {:?}",
            text.to_string_lossy()
        ))
    })
}

/// The `len` elements at `ptr`; NULL is an error unless `len` is 0.
///
/// # Safety
/// A non-NULL `ptr` points to `len` initialised elements of `T`, suitably aligned, valid and
/// unchanged for `'a`.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::invalid_argument(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|n| n > isize::MAX as usize)
    {
        return Err(Error::invalid_argument(format!(
            "{what}: a length of {len} is larger than memory"
        )));
    }
    // SAFETY: `ptr` is not NULL, the total size fits `isize`, and the caller vouches for the
    // rest (`len` valid, aligned elements that outlive `'a`).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The tensor described at `ptr`, input number `index` of a predict call, its data copied.
///
/// The description's fields are read one at a time through the raw pointer, the datatype as
/// the `int32_t` it is in C, so that an unknown datatype code is an error rather than an
/// invalid Rust enum.
///
/// # Safety
/// `ptr` is non-NULL, aligned and points to a `FerroserveTensor` whose non-NULL pointers are
/// valid for the lengths it states (`name` NUL-terminated, `rank` dimensions at `shape`,
/// `byte_size` bytes at `data`) for the duration of the call.
pub unsafe fn input_tensor(ptr: *const FerroserveTensor, index: usize) -> Result<Tensor, Error> {
    // SAFETY: the caller vouches that `ptr` points to a readable `FerroserveTensor`; `&raw
    // const` takes the fields' addresses without making references, and each field is read as
    // its own C type. `FerroserveDataType` is `repr(i32)`, so its field is an `i32`.
    let (name, code, shape, rank, data, byte_size) = unsafe {
        (
            (&raw const (*ptr).name).read(),
            (&raw const (*ptr).datatype).cast::<i32>().read(),
            (&raw const (*ptr).shape).read(),
            (&raw const (*ptr).rank).read(),
            (&raw const (*ptr).data).read(),
            (&raw const (*ptr).byte_size).read(),
        )
    };
    // SAFETY: the caller vouches for `name`.
    let name = unsafe { c_str(name, &format!("inputs[{index}].name")) }?;
    let datatype = FerroserveDataType::from_code(code).ok_or_else(|| {
        Error::invalid_argument(format!(
            "input '{name}': datatype code {code} is not a FerroserveDataType (0 to 13)"
        ))
    })?;
    // SAFETY: the caller vouches for `rank` dimensions at `shape`.
    let shape = unsafe { slice(shape, rank, &format!("input '{name}': shape")) }?;
    // SAFETY: the caller vouches for `byte_size` bytes at `data`; `u8` needs no alignment.
    let bytes = unsafe {
        slice(
            data.cast::<u8>(),
            byte_size,
            &format!("input '{name}': data"),
        )
    }?;
    decode_tensor(name, DataType::from(datatype), shape, bytes)
}

/// Checks that an out-parameter is not NULL.
pub fn out<T>(ptr: *mut T, what: &str) -> Result<*mut T, Error> {
    if ptr.is_null() {
        Err(Error::invalid_argument(format!("{what} is NULL")))
    } else {
        Ok(ptr)
    }
}

/// The handle at `ptr`, which `what` names in messages; NULL is an error.
///
/// # Safety
/// A non-NULL `ptr` came from this library (`Box::into_raw`) and has not been freed; it is not
/// freed while `'a` lasts.
pub unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller vouches that a non-NULL `ptr` points to a live `T` for `'a`.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::invalid_argument(format!("{what} is NULL")))
}
