//! An upload's body as it passes: counted against the largest file and hashed (SHA-256), so the
//! bound holds whatever `Content-Length` claimed and the digest needs no second read.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::ports::ByteStream;

#[derive(Default)]
struct State {
    size: u64,
    hasher: Sha256,
    exceeded: bool,
}

/// The count and digest of a metered body, read once it has ended.
#[derive(Clone, Default)]
pub(crate) struct Meter(Arc<Mutex<State>>);

impl Meter {
    /// `body`, failing as soon as it passes `limit` bytes.
    pub(crate) fn wrap(&self, body: ByteStream, limit: u64) -> ByteStream {
        let meter = self.clone();
        body.map(move |item| {
            let bytes = item?;
            let mut state = meter.0.lock().unwrap_or_else(|p| p.into_inner());
            state.size = state.size.saturating_add(bytes.len() as u64);
            if state.size > limit {
                state.exceeded = true;
                return Err(std::io::Error::other("the file is too large"));
            }
            state.hasher.update(&bytes);
            Ok(bytes)
        })
        .boxed()
    }

    /// Whether the body went past its bound.
    pub(crate) fn exceeded(&self) -> bool {
        self.0.lock().map(|s| s.exceeded).unwrap_or(true)
    }

    /// The bytes seen and their SHA-256 in lowercase hex.
    pub(crate) fn finish(&self) -> (u64, String) {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (state.size, hex::encode(state.hasher.clone().finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let parts: Vec<&'static [u8]> = parts.to_vec();
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
    }

    #[tokio::test]
    async fn counts_hashes_and_bounds() {
        let meter = Meter::default();
        let out: Vec<_> = meter.wrap(body(&[b"ab", b"c"]), 3).collect().await;
        assert!(out.iter().all(Result::is_ok));
        let (size, sha) = meter.finish();
        assert_eq!(size, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!meter.exceeded());

        let meter = Meter::default();
        let out: Vec<_> = meter.wrap(body(&[b"ab", b"cd"]), 3).collect().await;
        assert!(out[1].is_err());
        assert!(meter.exceeded());
    }
}
