//! Auth for browser-to-pod traffic: preshared bearer keys and signed URLs.

mod handle;
pub mod secret;
pub mod signed_url;
pub mod token;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod layer;

pub use handle::{AuthHandle, SIGNING_SECRET_ENV};
pub use secret::Secret;

/// Fill `buf` from the operating system's CSPRNG.
///
/// # Panics
/// Only when the OS has no random source at all, where no secret can be made safely.
pub fn random_bytes(buf: &mut [u8]) {
    use rand::TryRngCore;
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .expect("the operating system's random number generator is unavailable");
}
