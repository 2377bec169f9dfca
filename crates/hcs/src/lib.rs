//! The Host Compute Service as pane speaks it: schema v2 documents and the conventions
//! around them (HRESULT names, Windows command lines).
//!
//! Only the parts other crates already need live here so far; the document builders and the
//! Windows API wrappers arrive with their issue.

pub mod command_line;
pub mod hresult;
pub mod schema;
