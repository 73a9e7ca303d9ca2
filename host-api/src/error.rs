//! Errors shared by the capabilities.

use thiserror::Error;

/// A storage backend failed.
///
/// The message is for the operator's log; guests only ever see a generic
/// "store failed", because backend details (paths, addresses) are host
/// internals.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct StoreError {
    /// What failed, naming the operation.
    pub message: String,
    /// The backend's own error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A store error with `message` caused by `source`.
    pub fn new(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}
