//! OCI images as pane needs them: reading an OCI image layout, choosing the Windows platform
//! that fits the host, and the image facts the runtime builds a container from.
//!
//! The registry client and the content store build on these pieces.

pub mod credentials;
pub mod digest;
pub mod document;
pub mod image;
pub mod layout;
pub mod platform;
pub mod pull;
pub mod registry;
pub mod store;
mod stream_unpack;
#[cfg(windows)]
mod sys;
mod temp_name;

/// Renames a finished temporary file over its target, waiting out Windows' refusal while
/// another process holds the target open (for up to two seconds).
pub use temp_name::replace as replace_file;

pub use image::{ImageFacts, LayerFacts};
pub use layout::{LayoutError, LoadedImage, OciLayout};
pub use platform::{PlatformCandidate, PlatformChoice, PlatformError, select_platform};
pub use store::{ContentStore, ImageRecord, StoreError};
