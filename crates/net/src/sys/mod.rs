//! The computenetwork API on Windows; nothing elsewhere.

#[cfg(windows)]
mod windows;

#[cfg(windows)]
pub use self::windows::*;
