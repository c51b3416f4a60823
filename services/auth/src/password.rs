//! Password hashing with argon2id (PHC strings, the crate's default parameters).
//!
//! A hash is deliberately slow and needs 19 MiB of working memory, so [`Hasher`] bounds both:
//! at most `concurrency` hashes run at once, on the blocking pool (never on a runtime worker),
//! each in one of `concurrency` working buffers allocated once and reused. Allocating 19 MiB per
//! hash instead lets the allocator keep freed buffers per thread, which was seen as 700 MB
//! resident after a burst of registrations with only two hashes at a time. A request that
//! cannot get a slot within `max_wait` is answered `unavailable` without hashing: its caller has
//! given up by then. [`DUMMY_HASH`] lets login spend the same time on an unknown user as on a
//! wrong password, so response time does not reveal which usernames exist.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// An argon2id hash, with the default parameters, of a password nobody knows. Verified against
/// when the user does not exist; a unit test keeps its parameters equal to [`hash`]'s.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZHlzY2hhdC1kdW1teS1zYWx0$QSloqWt2JGn9TB0ufC/pkhU8gsBIkG2Bf4KQAG8UWlM";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("could not hash a password: {0}")]
    Hash(String),
    #[error("a stored password hash is malformed: {0}")]
    Malformed(String),
    /// Every hashing slot stayed busy for the whole wait.
    #[error("too many password checks at once")]
    Busy,
}

fn hash_error(e: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hash(e.to_string())
}

fn malformed(e: impl std::fmt::Display) -> PasswordError {
    PasswordError::Malformed(e.to_string())
}

/// The working memory of one hash, sized for the parameters it last ran with.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    fn for_params(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
    }
}

/// Runs `argon` over `password` and `salt` in `memory`; the output has `len` bytes.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    len: usize,
    memory: &mut Memory,
) -> Result<Output, PasswordError> {
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..len)
        .ok_or_else(|| malformed("hash output too long"))?;
    argon
        .hash_password_into_with_memory(password, salt, out, memory.for_params(params))
        .map_err(hash_error)?;
    Output::new(out).map_err(hash_error)
}

/// Hashes `password` with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str, memory: &mut Memory) -> Result<String, PasswordError> {
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::default(), params.clone());
    let salt = Salt::generate();
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = compute(&argon, &params, password.as_bytes(), &salt, len, memory)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).map_err(hash_error)?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed `phc` is an error, not a
/// mismatch, so a corrupt record shows up in the logs instead of as a failed login.
pub fn verify(password: &str, phc: &str, memory: &mut Memory) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(malformed)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(malformed("no salt or no hash"));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(malformed)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(malformed)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(malformed)?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = compute(
        &argon,
        &params,
        password.as_bytes(),
        salt,
        expected.len(),
        memory,
    )?;
    // `Output`'s equality is constant-time.
    Ok(&computed == expected)
}

/// Runs hashes and verifications on the blocking pool, a bounded number at once, each in a
/// working buffer that is reused.
pub struct Hasher {
    slots: tokio::sync::Semaphore,
    buffers: Arc<Mutex<Vec<Memory>>>,
    max_wait: Duration,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("available", &self.slots.available_permits())
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

impl Hasher {
    pub fn new(concurrency: usize, max_wait: Duration) -> Hasher {
        Hasher {
            slots: tokio::sync::Semaphore::new(concurrency.max(1)),
            buffers: Arc::new(Mutex::new(Vec::new())),
            max_wait,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _slot = tokio::time::timeout(self.max_wait, self.slots.acquire())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        let buffers = self.buffers.clone();
        tokio::task::spawn_blocking(move || {
            // A slot is held, so a buffer is free or one more may be made (never more buffers
            // than slots).
            let mut memory = lock(&buffers).pop().unwrap_or_default();
            let result = work(&mut memory);
            lock(&buffers).push(memory);
            result
        })
        .await
        .map_err(|e| PasswordError::Hash(format!("hashing task failed: {e}")))?
    }

    /// [`hash`], within the bound.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move |memory| hash(&password, memory)).await
    }

    /// [`verify`], within the bound.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, PasswordError> {
        self.run(move |memory| verify(&password, &phc, memory))
            .await
    }
}

fn lock(buffers: &Mutex<Vec<Memory>>) -> std::sync::MutexGuard<'_, Vec<Memory>> {
    buffers.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[test]
    fn hash_then_verify() {
        let mut memory = Memory::default();
        let phc = hash("correct horse", &mut memory).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify("correct horse", &phc, &mut memory).unwrap());
        assert!(!verify("wrong horse", &phc, &mut memory).unwrap());
        // The crate's own verifier agrees, so stored hashes stay standard PHC strings.
        assert!(Argon2::default()
            .verify_password(b"correct horse", phc.as_str())
            .is_ok());
    }

    #[test]
    fn salts_differ() {
        let mut memory = Memory::default();
        assert_ne!(
            hash("same password", &mut memory).unwrap(),
            hash("same password", &mut memory).unwrap()
        );
    }

    #[test]
    fn malformed_hash_is_an_error() {
        assert!(matches!(
            verify("x", "not a phc string", &mut Memory::default()),
            Err(PasswordError::Malformed(_))
        ));
    }

    #[test]
    fn dummy_hash_costs_what_a_real_one_does() {
        // Same algorithm and parameters as a fresh hash, so verifying against it takes as long.
        let mut memory = Memory::default();
        let real = hash("whatever password", &mut memory).unwrap();
        let params = |phc: &str| phc.rsplitn(3, '$').nth(2).map(String::from);
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(!verify("dyschat", DUMMY_HASH, &mut memory).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_is_bounded_and_a_long_queue_is_refused() {
        let hasher = Arc::new(Hasher::new(1, Duration::from_millis(1)));
        // One slot, a 1 ms wait: of several hashes started together, some are refused at once
        // instead of all queueing for a thread.
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("correct horse".into()).await })
            })
            .collect();
        let mut busy = 0;
        for task in tasks {
            if matches!(task.await.unwrap(), Err(PasswordError::Busy)) {
                busy += 1;
            }
        }
        assert!((1..4).contains(&busy), "{busy} refused");
        assert_eq!(lock(&hasher.buffers).len(), 1, "one slot, one buffer");
        let roomy = Hasher::new(2, Duration::from_secs(30));
        let phc = roomy.hash("correct horse".into()).await.unwrap();
        assert!(roomy.verify("correct horse".into(), phc).await.unwrap());
    }
}
