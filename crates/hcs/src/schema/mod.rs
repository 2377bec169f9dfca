//! HCS schema v2 types. Field names are `PascalCase` exactly as hcsshim's `schema2` package
//! writes them; absent optional fields are left out of the JSON, because the inbox guest
//! agent rejects fields it does not know.

mod process;

pub use process::{ConsoleSize, ProcessParameters, ProcessStatus};
