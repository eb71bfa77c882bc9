//! Randomness from the operating system's CSPRNG, the only source Tessera uses for
//! secrets, salts and tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::CoreError;

pub fn fill(buf: &mut [u8]) -> Result<(), CoreError> {
    getrandom::getrandom(buf).map_err(|e| CoreError::Internal(format!("OS random source failed: {e}")))
}

/// `bytes` random bytes as URL-safe base64 without padding.
pub fn token(bytes: usize) -> Result<String, CoreError> {
    let mut buf = vec![0u8; bytes];
    fill(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}
