//! What every export module needs of the C ABI: the argument types, reading a caller's
//! wide string, and an HRESULT as the `i32` the signatures return.
#![allow(unsafe_code)]

pub type Pcwstr = *const u16;
pub type Hresult = i32;

pub fn hr(value: u32) -> Hresult {
    value.cast_signed()
}

/// Reads an optional NUL-terminated UTF-16 string.
///
/// # Safety
/// `text` is null or points to a NUL-terminated UTF-16 string.
pub unsafe fn read(text: Pcwstr) -> Option<String> {
    if text.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: the caller guarantees NUL termination, so every index up to the NUL is valid.
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units starting at `text` were just read.
    let units = unsafe { std::slice::from_raw_parts(text, len) };
    Some(String::from_utf16_lossy(units))
}
