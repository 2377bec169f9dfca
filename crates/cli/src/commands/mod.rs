pub mod images;
pub mod plan;
pub mod spec_check;
pub mod version;
