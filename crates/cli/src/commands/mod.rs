pub mod spec_check;
pub mod version;
