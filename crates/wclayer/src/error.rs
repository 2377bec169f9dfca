/// Why a layer was refused or could not be stored. Entry problems name the entry.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer entry {path:?}: {problem}")]
    Entry { path: String, problem: String },
    #[error("the layer stream is damaged: {0}")]
    Stream(String),
    #[error("the layer's content hashes to {actual}, but the image config says {expected}")]
    DiffId { expected: String, actual: String },
    #[error("{call} on {path} failed with HRESULT 0x{hresult:08X}")]
    Windows {
        call: &'static str,
        path: std::path::PathBuf,
        hresult: u32,
    },
    #[error("vmcompute.dll is not usable ({0}); enable the Windows Containers feature")]
    Unavailable(String),
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl LayerError {
    pub(crate) fn entry(path: &str, problem: impl Into<String>) -> Self {
        Self::Entry {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io {
            context,
            path,
            source,
        }
    }
}
