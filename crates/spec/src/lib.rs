//! pane's service spec: the YAML a user writes to say what to run.
//!
//! ```
//! let spec = pane_spec::parse_service("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\n")?;
//! assert_eq!(spec.isolation, pane_spec::IsolationMode::Auto);
//! # Ok::<(), pane_spec::SpecError>(())
//! ```
//!
//! Parsing never stops at the first mistake: [`SpecError::Invalid`] carries every problem,
//! each with its field path, the value, what is wrong and how to fix it.

mod decode;
mod diag;
mod model;
pub mod platform;
pub mod quantity;
pub mod reference;
mod suggest;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use decode::{SPEC_VERSION, SpecFile};
pub use diag::{Diagnostic, FieldPath};
pub use model::{
    CommandSpec, DeploymentSpec, GpuSharing, GpuSpec, GpuVendor, ImageSpec, IsolationMode, Mount,
    PortMapping, Protocol, PullPolicy, RegistryAuthRef, Resources, ServiceSpec, TimeZoneMode,
};
pub use platform::OsVersion;
pub use quantity::{CpuCount, MemorySize};
pub use reference::{Digest, ImageReference};

use decode::Decoder;

/// Why a spec could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the file is not valid YAML: {0}")]
    Syntax(#[from] yaml::SyntaxError),
    #[error("{} problem(s) in the spec", .0.len())]
    Invalid(Vec<Diagnostic>),
}

impl SpecError {
    /// Every problem, in document order; a syntax error is reported as one problem.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            SpecError::Invalid(diagnostics) => diagnostics.clone(),
            SpecError::Syntax(e) => vec![Diagnostic {
                path: FieldPath::root(),
                position: e.position,
                value: None,
                problem: e.message.clone(),
                fix: "fix the YAML syntax".to_owned(),
            }],
        }
    }
}

/// A spec file that could not be read at all, or whose content is wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Spec { path: PathBuf, source: SpecError },
}

/// Parses a deployment file (`version`, `deployment`, `services`) or a single service.
pub fn parse(text: &str) -> Result<SpecFile, SpecError> {
    run(text, decode::decode_file)
}

/// Parses a deployment file.
pub fn parse_deployment(text: &str) -> Result<DeploymentSpec, SpecError> {
    run(text, decode::decode_deployment)
}

/// Parses a file that holds one service's spec at its top level.
pub fn parse_service(text: &str) -> Result<ServiceSpec, SpecError> {
    run(text, |decoder, root| {
        decode::decode_service(decoder, root, &FieldPath::root())
    })
}

/// Reads and parses a spec file from disk.
pub fn load(path: &Path) -> Result<SpecFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| LoadError::Spec {
        path: path.to_owned(),
        source,
    })
}

fn run<T>(
    text: &str,
    decode: impl FnOnce(&mut Decoder, &yaml::Node) -> Option<T>,
) -> Result<T, SpecError> {
    if text.trim().is_empty() {
        return Err(SpecError::Invalid(vec![Diagnostic {
            path: FieldPath::root(),
            position: None,
            value: None,
            problem: "the spec is empty".to_owned(),
            fix: "start from one of the files in examples/".to_owned(),
        }]));
    }
    let root = yaml::parse(text)?;
    let mut decoder = Decoder::default();
    let spec = decode(&mut decoder, &root);
    let diagnostics = decoder.into_diagnostics();
    match spec {
        Some(value) if diagnostics.is_empty() => Ok(value),
        _ => {
            let mut diagnostics = diagnostics.into_vec();
            diagnostics.sort_by_key(|d| d.position.map(|p| (p.line, p.column)));
            Err(SpecError::Invalid(diagnostics))
        }
    }
}
