//! The Windows named pipe with its security descriptor; nothing elsewhere.

#[cfg(windows)]
pub mod windows;
