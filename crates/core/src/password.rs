//! Password hashing with argon2id. Hashes are PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) so each carries the parameters it was
//! made with, and a login can tell when a hash is weaker than today's policy.

use std::fmt;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

use crate::secret::constant_time_eq;
use crate::{CoreError, random};

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// argon2id cost parameters. The defaults are OWASP's: 19 MiB, 2 passes, 1 lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

impl HashParams {
    fn argon2(&self) -> Result<Argon2<'static>, CoreError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(HASH_LEN))
            .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// How many 1 KiB blocks a hash with these parameters works in.
    pub fn block_count(&self) -> Result<usize, CoreError> {
        Ok(self.argon2()?.params().block_count())
    }

    pub fn validate(&self) -> Result<(), String> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, Some(HASH_LEN))
            .map(|_| ())
            .map_err(|e| format!("invalid argon2 parameters: {e}"))
    }
}

/// A password as typed. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A stored password hash in PHC string form.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    phc: String,
    params: HashParams,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({:?}, [redacted])", self.params)
    }
}

impl PasswordHash {
    pub fn parse(phc: &str) -> Result<Self, CoreError> {
        let bad = || CoreError::Internal("stored password hash is not an argon2id PHC string".into());
        let mut parts = phc.split('$');
        let (Some(""), Some("argon2id"), Some("v=19"), Some(params), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let mut p = HashParams { memory_kib: 0, iterations: 0, parallelism: 0 };
        for kv in params.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let v: u32 = v.parse().map_err(|_| bad())?;
            match k {
                "m" => p.memory_kib = v,
                "t" => p.iterations = v,
                "p" => p.parallelism = v,
                _ => return Err(bad()),
            }
        }
        p.validate().map_err(|_| bad())?;
        let salt = B64.decode(salt).map_err(|_| bad())?;
        let hash = B64.decode(hash).map_err(|_| bad())?;
        if hash.len() != HASH_LEN {
            return Err(bad());
        }
        Ok(PasswordHash { phc: phc.to_owned(), params: p, salt, hash })
    }

    pub fn as_phc(&self) -> &str {
        &self.phc
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// True when the hash was made with other parameters than the policy's now.
    pub fn needs_rehash(&self, policy: &HashParams) -> bool {
        self.params != *policy
    }
}

/// Working memory for argon2, kept by a hashing thread and reused for every hash so a
/// busy server does not allocate and free 19 MiB per login.
#[derive(Default)]
pub struct Workspace {
    blocks: Vec<Block>,
}

impl Workspace {
    fn blocks_for(&mut self, params: &HashParams) -> Result<&mut [Block], CoreError> {
        let n = params.block_count()?;
        if self.blocks.len() < n {
            self.blocks.resize(n, Block::default());
        }
        Ok(&mut self.blocks[..n])
    }

    pub fn hash(&mut self, params: &HashParams, password: &Password) -> Result<PasswordHash, CoreError> {
        let mut salt = [0u8; SALT_LEN];
        random::fill(&mut salt)?;
        let mut out = [0u8; HASH_LEN];
        self.raw(params, password.expose().as_bytes(), &salt, &mut out)?;
        let phc = format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.memory_kib,
            params.iterations,
            params.parallelism,
            B64.encode(salt),
            B64.encode(out)
        );
        PasswordHash::parse(&phc)
    }

    pub fn verify(&mut self, hash: &PasswordHash, password: &Password) -> Result<bool, CoreError> {
        let mut out = [0u8; HASH_LEN];
        self.raw(&hash.params, password.expose().as_bytes(), &hash.salt, &mut out)?;
        Ok(constant_time_eq(&out, &hash.hash))
    }

    /// One raw argon2id evaluation; also what the benchmark measures as the limit.
    pub fn raw(&mut self, params: &HashParams, pwd: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), CoreError> {
        let argon2 = params.argon2()?;
        let blocks = self.blocks_for(params)?;
        argon2
            .hash_password_into_with_memory(pwd, salt, out, blocks)
            .map_err(|e| CoreError::Internal(format!("argon2: {e}")))
    }

    /// Bytes of working memory held.
    pub fn held_bytes(&self) -> usize {
        self.blocks.len() * 1024
    }
}

/// Where password hashing runs. The server provides a bounded pool of threads; the
/// domain only needs to ask.
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: Password) -> Result<PasswordHash, CoreError>;
    async fn verify(&self, hash: PasswordHash, password: Password) -> Result<bool, CoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn hash_then_verify() -> Result<(), CoreError> {
        let mut ws = Workspace::default();
        let h = ws.hash(&FAST, &Password::new("correct horse"))?;
        assert!(h.as_phc().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(ws.verify(&h, &Password::new("correct horse"))?);
        assert!(!ws.verify(&h, &Password::new("correct horsf"))?);
        Ok(())
    }

    #[test]
    fn verifies_hashes_made_by_another_implementation() -> Result<(), CoreError> {
        // Made with Python's argon2-cffi (libargon2), one lane and four lanes.
        let mut ws = Workspace::default();
        for phc in [
            "$argon2id$v=19$m=64,t=2,p=1$9CDgftLWA8/N2q+SGxP7QA$Fw2EP7Sz0ImaxbmxqcMv21u+ReC0Fk/2Wfhzsk0TdVw",
            "$argon2id$v=19$m=256,t=1,p=4$uobr+fKoHk1nPEn06k0Pdw$HwTJMS6aNKICMsLGTfc76tz8DXJH5SadtdEqTVB9M4A",
        ] {
            let h = PasswordHash::parse(phc)?;
            assert!(ws.verify(&h, &Password::new("correct horse battery staple"))?, "{phc}");
            assert!(!ws.verify(&h, &Password::new("correct horse battery stapler"))?, "{phc}");
        }
        Ok(())
    }

    #[test]
    fn parse_rejects_other_algorithms_and_garbage() {
        for bad in [
            "",
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAA",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$AAAA",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn needs_rehash_when_policy_changes() -> Result<(), CoreError> {
        let mut ws = Workspace::default();
        let h = ws.hash(&FAST, &Password::new("pw"))?;
        assert!(!h.needs_rehash(&FAST));
        assert!(h.needs_rehash(&HashParams { iterations: 2, ..FAST }));
        Ok(())
    }

    #[test]
    fn password_debug_is_redacted() {
        assert_eq!(format!("{:?}", Password::new("s3cret")), "[redacted]");
    }
}
