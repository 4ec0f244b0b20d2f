//! sha256 digests of streams and blobs.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::ImageError;
use super::reference::is_sha256_hex;

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The hex part of a `sha256:<hex>` digest, or an error naming what carried it.
pub fn hex_of(digest: &str, what: &str) -> Result<String, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if is_sha256_hex(h) => Ok(h.to_string()),
        _ => Err(ImageError::Unsupported(format!(
            "digest `{digest}` of {what}: only sha256 digests are supported"
        ))),
    }
}

/// Check `data` against a descriptor's digest and size.
pub fn verify(what: &str, data: &[u8], digest: &str, size: Option<u64>) -> Result<(), ImageError> {
    let actual = sha256(data);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    if let Some(s) = size
        && s != data.len() as u64
    {
        return Err(ImageError::SizeMismatch {
            what: what.to_string(),
            expected: s,
            actual: data.len() as u64,
        });
    }
    Ok(())
}

/// The running digest of a stream; shared so it can be read after the reader moved into a
/// decoder or a tar archive.
#[derive(Clone, Default)]
pub struct Running(Rc<RefCell<(Sha256, u64)>>);

impl Running {
    /// `sha256:<hex>` and byte count so far.
    pub fn finish(&self) -> (String, u64) {
        let s = self.0.borrow();
        (
            format!("sha256:{}", hex::encode(s.0.clone().finalize())),
            s.1,
        )
    }
}

/// A reader that hashes what passes through it and reports progress.
pub struct Hashing<'a, R> {
    inner: R,
    state: Running,
    progress: Option<&'a dyn Fn(u64)>,
}

impl<'a, R: Read> Hashing<'a, R> {
    pub fn new(inner: R, progress: Option<&'a dyn Fn(u64)>) -> (Self, Running) {
        let state = Running::default();
        (
            Hashing {
                inner,
                state: state.clone(),
                progress,
            },
            state,
        )
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.state.0.borrow_mut();
        s.0.update(&buf[..n]);
        s.1 += n as u64;
        if let Some(p) = self.progress {
            p(n as u64);
        }
        Ok(n)
    }
}
