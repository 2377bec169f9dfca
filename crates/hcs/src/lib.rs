//! The Host Compute Service as pane speaks it: schema v2 documents and the conventions
//! around them (HRESULT names, Windows command lines).
//!

pub mod command_line;
pub mod doc;
pub mod error;
pub mod events;
pub mod hresult;
pub mod schema;
pub mod sys;

pub use error::HcsError;
pub use events::HcsEvent;
