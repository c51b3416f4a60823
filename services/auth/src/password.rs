//! Password hashing with argon2id (PHC strings, the crate's default parameters).
//!
//! Hashing is deliberately slow, so the async wrappers run it on the blocking pool and never on
//! a runtime worker. [`DUMMY_HASH`] lets login spend the same time on an unknown user as on a
//! wrong password, so response time does not reveal which usernames exist.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// An argon2id hash, with the default parameters, of a password nobody knows. Verified against
/// when the user does not exist; a unit test keeps its parameters equal to [`hash`]'s.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZHlzY2hhdC1kdW1teS1zYWx0$QSloqWt2JGn9TB0ufC/pkhU8gsBIkG2Bf4KQAG8UWlM";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("could not hash a password: {0}")]
    Hash(String),
    #[error("a stored password hash is malformed: {0}")]
    Malformed(String),
}

/// Hashes `password` with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A malformed `phc` is an error, not a
/// mismatch, so a corrupt record shows up in the logs instead of as a failed login.
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    match Argon2::default().verify_password(password.as_bytes(), phc) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(PasswordError::Malformed(e.to_string())),
    }
}

/// [`hash`] on the blocking pool.
pub async fn hash_blocking(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| PasswordError::Hash(format!("hashing task failed: {e}")))?
}

/// [`verify`] on the blocking pool.
pub async fn verify_blocking(password: String, phc: String) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .map_err(|e| PasswordError::Hash(format!("verify task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify("correct horse", &phc).unwrap());
        assert!(!verify("wrong horse", &phc).unwrap());
    }

    #[test]
    fn salts_differ() {
        assert_ne!(
            hash("same password").unwrap(),
            hash("same password").unwrap()
        );
    }

    #[test]
    fn malformed_hash_is_an_error() {
        assert!(matches!(
            verify("x", "not a phc string"),
            Err(PasswordError::Malformed(_))
        ));
    }

    #[test]
    fn dummy_hash_costs_what_a_real_one_does() {
        // Same algorithm and parameters as a fresh hash, so verifying against it takes as long.
        let real = hash("whatever password").unwrap();
        let params = |phc: &str| phc.rsplitn(3, '$').nth(2).map(String::from);
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(!verify("dyschat", DUMMY_HASH).unwrap());
    }
}
