pub mod container_info;
pub mod container_source;
pub mod containers;
pub mod images;
pub mod network;
pub mod plan;
pub mod spec_check;
pub mod version;
