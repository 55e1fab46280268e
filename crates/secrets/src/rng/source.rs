//! Entropy sources: the operating system's in production, the doubles of
//! [`testing`](super::testing) in tests.

/// A source of entropy that may fail. The box draws its OS stream from one.
pub trait EntropySource {
    /// Fills `out` entirely, or returns an error. On error the contents of `out` are
    /// unspecified: the caller must not use them.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError>;
}

impl<S: EntropySource + ?Sized> EntropySource for Box<S> {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        (**self).fill(out)
    }
}

/// Why an entropy source produced nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The operating system's generator returned an error.
    #[error("operating system entropy source error: {0}")]
    Os(getrandom::Error),
    /// A source is unavailable (a device gone, or a test double told to fail).
    #[error("entropy source unavailable: {0}")]
    Unavailable(&'static str),
}

/// The operating system's entropy source (`getrandom`), the production OS stream of every box.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl EntropySource for OsEntropy {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        getrandom::fill(out).map_err(SourceError::Os)
    }
}
