//! Windows container image layers.
//!
//! A Windows layer is a tar stream whose entries live under `Files/` (the container's C:),
//! `Hives/` (registry deltas) and, in base layers, `UtilityVM/Files/` (the utility VM's OS).
//! Windows metadata travels in PAX records: `MSWINDOWS.fileattr` (attributes),
//! `MSWINDOWS.rawsd` (a self-relative security descriptor, base64), `LIBARCHIVE.creationtime`.
//! Alternate data streams are entries named `file:stream`; `.wh.name` entries delete `name`
//! from the layers below.
//!
//! - [`reader`]: streaming, validating reader (gzip and zstd by pure-Rust codecs);
//! - [`writer`]: writes the same format back;
//! - [`store`]: the portable layer store (plain files plus a metadata record), keyed by
//!   diff ID, with parent chains;
//! - [`backup`] and [`import`]: entries as Win32 backup streams, the legacy import folder,
//!   and (on Windows) the import into HCS layers, kept by [`hcs_store`] under chain IDs.

pub mod backup;
pub mod beneath;
pub mod entry;
pub mod error;
pub mod hcs_store;
pub mod host;
pub mod import;
pub mod paths;
pub mod reader;
pub mod store;
pub mod sys;
pub mod writer;

pub use entry::{EntryKind, LayerEntry};
pub use error::LayerError;
pub use hcs_store::HcsLayerStore;
pub use host::HostLayers;
pub use reader::LayerReader;
pub use store::LayerStore;
pub use writer::LayerWriter;
