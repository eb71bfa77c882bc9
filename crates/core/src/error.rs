//! The domain's error type. The server maps each variant to HTTP exactly once.

use crate::store::StoreError;
use crate::validation::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input that does not describe a valid request; carries field-level detail.
    #[error("validation failed")]
    Invalid(ValidationErrors),
    #[error("not found")]
    NotFound,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Something that should not happen; the text goes to the log, never to a client.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<ValidationErrors> for CoreError {
    fn from(e: ValidationErrors) -> Self {
        CoreError::Invalid(e)
    }
}
