//! HMAC-signed URLs with an expiry, byte-compatible with ExAtlas.
//!
//! For requests whose sender cannot set headers (`<video src>`, `<img src>`, a
//! WebSocket upgrade), the credential travels in the query string instead: `exp`
//! (expiry, Unix seconds) and `sig` (the signature).
//!
//! # Canonical form
//! ExAtlas (Elixir) and this module sign the same bytes, so a URL signed by either
//! verifies in the other:
//!
//! 1. The query is parsed as `application/x-www-form-urlencoded`: pairs split on `&`,
//!    key and value on the first `=`, `+` is a space, `%XX` is a byte. A repeated key
//!    keeps its last value. Values are bytes, not necessarily UTF-8.
//! 2. `sig` and `exp` are dropped, then `exp` = expiry in Unix seconds (decimal) is added.
//! 3. The parameters are sorted by key (bytewise) and encoded: space → `+`, every byte
//!    except `A–Z a–z 0–9 - . _ ~` → `%XX` with uppercase hex; `key=value` joined by `&`.
//! 4. Canonical string = the URL's path (`/` when empty) + `?` + the encoded parameters.
//! 5. Signature = HMAC-SHA256 keyed with the secret's bytes as given (not decoded),
//!    encoded base64url without padding.
//! 6. The signed URL's query is the sorted, encoded parameters with `exp` and `sig`
//!    included; scheme, host, port, path and fragment are unchanged.
//!
//! Verification recomputes the signature and compares it in constant time; expiry is
//! checked before the signature. A URL is valid up to and including its `exp` second.
//!
//! # Strictness
//! - `sig` must be spelled exactly as signing writes it: 43 characters of the base64url
//!   alphabet, no padding, no percent-escapes, no standard-base64 `+`/`/`. Another
//!   spelling of the same bytes is refused ([`Malformed::InvalidSig`]), so one
//!   signature has one URL form.
//! - A URL carrying `sig` or `exp` more than once is refused ([`Malformed::DuplicateSig`],
//!   [`Malformed::DuplicateExp`]) instead of letting the last one win.
//! - [`sign`] refuses secrets shorter than [`MIN_SECRET_BYTES`]. [`verify`] accepts any
//!   non-empty secret, so URLs signed elsewhere with a shorter one still verify.
//!
//! # Caveats
//! - Scheme, host and port are not signed (a pod sees only its path and query), so a
//!   URL for one pod verifies on another pod that shares its secret: use one secret per pod.
//! - URLs are parsed with the WHATWG rules of the `url` crate, as a browser does: the
//!   path is normalized (`/a/../b` → `/b`, spaces → `%20`) before it is signed, so the
//!   signature covers the path the browser will actually send.
//! - Equivalent encodings of the same parameters other than `sig` (`%2f` and `%2F`, `+`
//!   and `%20`, any parameter order) verify alike: the signature covers what the server
//!   decodes, not the spelling.
//! - A `%` not followed by two hex digits is kept literally (WHATWG), so it signs as `%25`.
//!
//! # Examples
//! ```
//! use std::time::{Duration, SystemTime};
//! use cloud_atlas::auth::{signed_url, Secret};
//!
//! let secret = Secret::new("per-pod-secret-of-at-least-32-bytes");
//! let url = signed_url::sign("https://pod.example/media/a.mp4?w=640", &secret, Duration::from_secs(3600))?;
//! assert!(signed_url::verify(&url, &secret, SystemTime::now()).is_ok());
//! # Ok::<(), cloud_atlas::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use super::secret::Secret;
use crate::error::{Error, Result};

/// Query parameter carrying the expiry (Unix seconds).
pub const EXP_PARAM: &str = "exp";
/// Query parameter carrying the signature.
pub const SIG_PARAM: &str = "sig";

/// The shortest secret [`sign`] accepts, in bytes (HMAC-SHA256's output size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Length of a canonical `sig`: 32 bytes in base64url without padding.
const SIG_LEN: usize = 43;

/// Placeholder origin used to parse a bare path-and-query (`/media/a.mp4?exp=…`).
const PLACEHOLDER_ORIGIN: &str = "http://signed-url.invalid";

/// Why a signed URL is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The URL was signed correctly or not, but its `exp` has passed. Checked
    /// before the signature, so this says nothing about authenticity.
    Expired {
        /// The `exp` the URL carries (Unix seconds).
        expired_at: u64,
    },
    /// The signature does not match the URL and secret.
    BadSignature,
    /// The URL cannot carry a signature at all.
    Malformed(Malformed),
}

/// What makes a URL malformed for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// Not an absolute URL nor a path-and-query starting with `/`.
    Unparsable,
    /// No `exp` parameter.
    MissingExp,
    /// `exp` is not a non-negative decimal integer that fits in 64 bits.
    InvalidExp,
    /// No `sig` parameter.
    MissingSig,
    /// `exp` appears more than once.
    DuplicateExp,
    /// `sig` appears more than once.
    DuplicateSig,
    /// `sig` is not 43 characters of unpadded base64url, spelled without escapes.
    InvalidSig,
}

impl Malformed {
    /// A short lowercase reason, e.g. `missing exp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Unparsable => "unparsable URL",
            Malformed::MissingExp => "missing exp",
            Malformed::InvalidExp => "exp is not a decimal integer",
            Malformed::MissingSig => "missing sig",
            Malformed::DuplicateExp => "duplicate exp",
            Malformed::DuplicateSig => "duplicate sig",
            Malformed::InvalidSig => "sig is not canonical unpadded base64url",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Expired { expired_at } => {
                write!(f, "signed URL expired (exp {expired_at})")
            }
            VerifyError::BadSignature => f.write_str("bad signature"),
            VerifyError::Malformed(m) => write!(f, "malformed signed URL: {m}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A URL that passed [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The URL's expiry (Unix seconds, inclusive).
    pub expires_at: u64,
}

/// Sign `url` so it is valid for `expires_in` from now.
///
/// `url` is an absolute URL (`https://pod:8000/media/a.mp4?w=640`) or a path-and-query
/// (`/media/a.mp4?w=640`); the result has the same form. Existing `exp`/`sig`
/// parameters are replaced.
///
/// # Errors
/// [`ErrorKind::Validation`](crate::ErrorKind::Validation) when `url` cannot be parsed
/// or the secret is shorter than [`MIN_SECRET_BYTES`].
pub fn sign(url: &str, secret: &Secret, expires_in: Duration) -> Result<String> {
    sign_at(url, secret, expires_in, SystemTime::now())
}

/// [`sign`] with an explicit clock: the URL expires at `now + expires_in` (whole seconds).
///
/// # Errors
/// As [`sign`].
pub fn sign_at(
    url: &str,
    secret: &Secret,
    expires_in: Duration,
    now: SystemTime,
) -> Result<String> {
    if secret.expose().len() < MIN_SECRET_BYTES {
        return Err(Error::validation(
            "secret",
            format!(
                "must be at least {MIN_SECRET_BYTES} bytes (a spawn with signed-URL auth mints one; or use 32 random bytes, base64url)"
            ),
        ));
    }
    sign_unchecked(url, secret, expires_in, now)
}

/// [`sign_at`] without the secret-length check (known-answer tests with short keys).
fn sign_unchecked(
    url: &str,
    secret: &Secret,
    expires_in: Duration,
    now: SystemTime,
) -> Result<String> {
    let mut parsed = ParsedUrl::parse(url).ok_or_else(|| {
        Error::validation(
            "url",
            "must be an absolute URL or a path starting with `/` (e.g. /media/a.mp4?w=640)",
        )
    })?;
    let exp = unix_secs(now).saturating_add(expires_in.as_secs());
    let mut params = parse_query(parsed.url.query().unwrap_or(""));
    params.remove(SIG_PARAM.as_bytes());
    params.insert(EXP_PARAM.as_bytes().to_vec(), exp.to_string().into_bytes());
    let sig = signature(&parsed.path(), &params, secret);
    params.insert(SIG_PARAM.as_bytes().to_vec(), sig.into_bytes());
    parsed.url.set_query(Some(&encode_params(&params)));
    Ok(parsed.to_output())
}

/// Verify a signed URL (absolute, or the path-and-query a server receives) at `now`.
///
/// Checks, in order: the URL parses, `exp` is present and an integer, `sig` is
/// present, `now` is not past `exp`, and the signature matches (constant-time).
/// An empty secret never verifies.
///
/// # Errors
/// [`VerifyError::Malformed`], [`VerifyError::Expired`] or [`VerifyError::BadSignature`].
pub fn verify(
    url_or_path_and_query: &str,
    secret: &Secret,
    now: SystemTime,
) -> std::result::Result<Verified, VerifyError> {
    let parsed = ParsedUrl::parse(url_or_path_and_query)
        .ok_or(VerifyError::Malformed(Malformed::Unparsable))?;
    let query = parsed.url.query().unwrap_or("");
    let (mut exp_raw, mut sig_raw) = (None, None);
    for (key, raw) in raw_pairs(query) {
        let key = form_decode(key);
        let (slot, duplicate) = if key == EXP_PARAM.as_bytes() {
            (&mut exp_raw, Malformed::DuplicateExp)
        } else if key == SIG_PARAM.as_bytes() {
            (&mut sig_raw, Malformed::DuplicateSig)
        } else {
            continue;
        };
        if slot.replace(raw).is_some() {
            return Err(VerifyError::Malformed(duplicate));
        }
    }
    let exp_raw = exp_raw.ok_or(VerifyError::Malformed(Malformed::MissingExp))?;
    let exp =
        parse_exp(&form_decode(exp_raw)).ok_or(VerifyError::Malformed(Malformed::InvalidExp))?;
    let sig_raw = sig_raw.ok_or(VerifyError::Malformed(Malformed::MissingSig))?;
    let sig = decode_sig(sig_raw).ok_or(VerifyError::Malformed(Malformed::InvalidSig))?;
    if unix_secs(now) > exp {
        return Err(VerifyError::Expired { expired_at: exp });
    }
    // The exp that is signed is the one the URL carries (decoded), byte for byte.
    let mut params = parse_query(query);
    params.remove(SIG_PARAM.as_bytes());
    let matches = mac(&parsed.path(), &params, secret)
        .verify_slice(&sig)
        .is_ok();
    if matches && !secret.expose().is_empty() {
        Ok(Verified { expires_at: exp })
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// A canonical `sig`: exactly [`SIG_LEN`] base64url characters as written (no escapes,
/// no padding) that decode strictly (no stray trailing bits) to 32 bytes.
fn decode_sig(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != SIG_LEN
        || !raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return None;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .filter(|b| b.len() == 32)
}

/// The query's `key=value` pairs as written (key and value not decoded).
fn raw_pairs(query: &str) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .as_bytes()
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        })
}

/// The canonical string that is signed: `path?sorted-encoded-params`.
///
/// `params` must already hold `exp` and must not hold `sig`. Public so other
/// implementations can compare their canonical form byte for byte.
pub fn canonical_string(path: &str, params: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("{path}?{}", encode_params(params))
}

/// Parse a query string as `application/x-www-form-urlencoded` into a sorted map of
/// raw bytes, the last value of a repeated key winning.
pub fn parse_query(query: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    raw_pairs(query)
        .map(|(key, value)| (form_decode(key), form_decode(value)))
        .collect()
}

/// Encode bytes as `application/x-www-form-urlencoded` per the canonical rule: space
/// → `+`; `A–Z a–z 0–9 - . _ ~` as is; every other byte `%XX` with uppercase hex.
pub fn form_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out
}

fn form_decode(raw: &[u8]) -> Vec<u8> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space).collect()
}

fn encode_params(params: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&form_encode(k));
        out.push('=');
        out.push_str(&form_encode(v));
    }
    out
}

fn mac(path: &str, params: &BTreeMap<Vec<u8>, Vec<u8>>, secret: &Secret) -> Hmac<Sha256> {
    let canonical = canonical_string(path, params);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(canonical.as_bytes());
    mac
}

fn signature(path: &str, params: &BTreeMap<Vec<u8>, Vec<u8>>, secret: &Secret) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(mac(path, params, secret).finalize().into_bytes())
}

/// Strict decimal: ASCII digits only, fits in `u64`.
fn parse_exp(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A URL as given: absolute, or a path-and-query parsed against a placeholder origin.
struct ParsedUrl {
    url: Url,
    relative: bool,
}

impl ParsedUrl {
    fn parse(input: &str) -> Option<ParsedUrl> {
        let (url, relative) = if input.starts_with('/') {
            (
                Url::parse(&format!("{PLACEHOLDER_ORIGIN}{input}")).ok()?,
                true,
            )
        } else {
            (Url::parse(input).ok()?, false)
        };
        if url.cannot_be_a_base() {
            return None;
        }
        Some(ParsedUrl { url, relative })
    }

    fn path(&self) -> String {
        let p = self.url.path();
        if p.is_empty() { "/" } else { p }.to_string()
    }

    fn to_output(&self) -> String {
        if !self.relative {
            return self.url.to_string();
        }
        let mut out = self.path();
        if let Some(q) = self.url.query() {
            out.push('?');
            out.push_str(q);
        }
        if let Some(f) = self.url.fragment() {
            out.push('#');
            out.push_str(f);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A secret long enough for [`sign`].
    fn secret() -> Secret {
        Secret::new("s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t")
    }

    /// Known-answer vectors. Expected values were computed independently with a
    /// byte-level Python reference (`urllib.parse.unquote_to_bytes` / `quote_plus(safe=b'')`,
    /// `hmac`/`hashlib.sha256`, `base64.urlsafe_b64encode` without `=`), not with this code.
    /// Each row: secret, input, now, expires_in seconds, expected signed output.
    const VECTORS: &[(&str, &str, u64, u64, &str)] = &[
        // plain absolute URL; scheme, host and port kept
        (
            "s3cr3t",
            "https://pod.example:8443/media/clip.mp4?w=640&h=360",
            1_700_000_000,
            3600,
            "https://pod.example:8443/media/clip.mp4?exp=1700003600&h=360&sig=tsprwZn6t0QWl6l9ElAGjIpAnON51w28NPy-4CiA1rw&w=640",
        ),
        // `+` is a space, `%2B` is a plus, a raw space is a space
        (
            "s3cr3t",
            "/infer?prompt=hello+world&q=a%2Bb&raw=x y",
            1_700_000_000,
            60,
            "/infer?exp=1700000060&prompt=hello+world&q=a%2Bb&raw=x+y&sig=Lls4C2EbYsf0qtklg6q8awrE1HnlvoDnR0EKTr0WmgI",
        ),
        // unicode in path, keys, values and the secret (UTF-8 bytes)
        (
            "k\u{e9}y-\u{2713}",
            "/m/caf\u{e9}?name=caf\u{e9}&emoji=%F0%9F%98%80&k%C3%A9y=v",
            1_700_000_000,
            0,
            "/m/caf%C3%A9?emoji=%F0%9F%98%80&exp=1700000000&k%C3%A9y=v&name=caf%C3%A9&sig=QqfFpj4R1syJN7kMzr1Glm7iiPbU91e-t5PHgHY7HlA",
        ),
        // repeated key keeps the last value
        (
            "s3cr3t",
            "/r?a=1&b=2&a=3",
            1_700_000_000,
            0,
            "/r?a=3&b=2&exp=1700000000&sig=C2jKtMFnNhpqqSKAC-AZ8XnGs1El70REXhuSn5QXz4M",
        ),
        // existing sig/exp are dropped and replaced
        (
            "s3cr3t",
            "/x?sig=forged&exp=1&z=last&exp=99",
            1_700_000_000,
            1,
            "/x?exp=1700000001&sig=FwLqChmRbq3YdHe1GQ3u3BrryI7LJ66rVK1cl_ByBRA&z=last",
        ),
        // empty path signs as `/`
        (
            "s3cr3t",
            "https://pod.example?x=1",
            1_700_000_000,
            0,
            "https://pod.example/?exp=1700000000&sig=HSNYqB86aoY8fV3gsj01gMWRD0-VEDvkyyeVChqAogY&x=1",
        ),
        // key without `=`, empty value, empty key, empty pairs
        (
            "s3cr3t",
            "/f?flag&empty=&=novalue&&",
            1_700_000_000,
            0,
            "/f?=novalue&empty=&exp=1700000000&flag=&sig=UbsRGpe1dHZB8jN8dTI8j7s8eCL8sa7jvl3EhFiTH1o",
        ),
        // reserved characters are percent-encoded, `~ . - _` are not
        (
            "s3cr3t",
            "/s?path=a/b*c!(d)'e~f&dot=.-_",
            1_700_000_000,
            0,
            "/s?dot=.-_&exp=1700000000&path=a%2Fb%2Ac%21%28d%29%27e~f&sig=FLRd56bmq61clIDWTayTkRIgO2IxOcpJMCPuczLvZYw",
        ),
        // non-UTF-8 bytes survive; lowercase hex becomes uppercase
        (
            "s3cr3t",
            "/b?bin=%FF%00&lower=%2f",
            1_700_000_000,
            0,
            "/b?bin=%FF%00&exp=1700000000&lower=%2F&sig=T29M5hf9eGaodMoCEGlXf4u_38sSgH2vmwK-y9fI6YA",
        ),
    ];

    #[test]
    fn known_answer_vectors_sign() {
        for (secret, input, now, exp_in, want) in VECTORS {
            // The vectors' secrets are short: the algorithm, not the length policy.
            let got = sign_unchecked(
                input,
                &Secret::new(*secret),
                Duration::from_secs(*exp_in),
                at(*now),
            )
            .unwrap();
            assert_eq!(&got, want, "signing {input}");
        }
    }

    #[test]
    fn known_answer_vectors_verify() {
        for (secret, _, now, exp_in, signed) in VECTORS {
            let v = verify(signed, &Secret::new(*secret), at(now + exp_in)).unwrap();
            assert_eq!(v.expires_at, now + exp_in);
        }
    }

    #[test]
    fn verifies_foreign_spelling_of_the_same_parameters() {
        // What another signer may emit for vector 2: unsorted, `%20` for space,
        // lowercase hex. The signature covers the decoded parameters.
        let url = "/infer?sig=Lls4C2EbYsf0qtklg6q8awrE1HnlvoDnR0EKTr0WmgI&raw=x%20y&q=a%2bb&prompt=hello%20world&exp=1700000060";
        assert!(verify(url, &Secret::new("s3cr3t"), at(1_700_000_000)).is_ok());
    }

    #[test]
    fn canonical_form_matches_the_rule() {
        let params = parse_query("b=%7E+&a=%e2%9c%93&a=x&c");
        assert_eq!(canonical_string("", &params), "/?a=x&b=~+&c=");
        assert_eq!(
            form_encode(b"Az09-._~ +/%\x7f\x80"),
            "Az09-._~+%2B%2F%25%7F%80"
        );
    }

    #[test]
    fn ok_until_and_including_exp() {
        let url = sign_at("/v?id=1", &secret(), Duration::from_secs(10), at(1000)).unwrap();
        assert_eq!(
            verify(&url, &secret(), at(1000)),
            Ok(Verified { expires_at: 1010 })
        );
        assert!(verify(&url, &secret(), at(1010)).is_ok());
        assert_eq!(
            verify(&url, &secret(), at(1011)),
            Err(VerifyError::Expired { expired_at: 1010 })
        );
    }

    #[test]
    fn expiry_is_checked_before_the_signature() {
        let url = format!("/v?exp=5&sig={}", "A".repeat(43));
        let url = url.as_str();
        assert_eq!(
            verify(url, &secret(), at(6)),
            Err(VerifyError::Expired { expired_at: 5 })
        );
        assert_eq!(
            verify(url, &secret(), at(5)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn bad_signature_for_wrong_secret_or_changed_params() {
        let url = sign_at(
            "https://h/v?id=1",
            &secret(),
            Duration::from_secs(10),
            at(0),
        )
        .unwrap();
        assert_eq!(
            verify(&url, &Secret::new("other"), at(0)),
            Err(VerifyError::BadSignature)
        );
        let changed = url.replace("id=1", "id=2");
        assert_eq!(
            verify(&changed, &secret(), at(0)),
            Err(VerifyError::BadSignature)
        );
        let added = format!("{url}&extra=1");
        assert_eq!(
            verify(&added, &secret(), at(0)),
            Err(VerifyError::BadSignature)
        );
        let moved = url.replace("https://h/v", "https://h/w");
        assert_eq!(
            verify(&moved, &secret(), at(0)),
            Err(VerifyError::BadSignature)
        );
        // the host is not signed (the pod only sees its own path), as in ExAtlas
        let rehosted = url.replace("https://h/", "https://other:9/");
        assert!(verify(&rehosted, &secret(), at(0)).is_ok());
    }

    #[test]
    fn path_and_query_and_absolute_forms_agree() {
        let abs = sign_at(
            "https://h:1/v?id=1",
            &secret(),
            Duration::from_secs(10),
            at(0),
        )
        .unwrap();
        let pq = &abs["https://h:1".len()..];
        assert!(pq.starts_with("/v?"));
        assert!(verify(pq, &secret(), at(0)).is_ok());
    }

    #[test]
    fn malformed_reasons() {
        let s = secret();
        let m = |u: &str| verify(u, &s, at(0));
        assert_eq!(
            m("not a url"),
            Err(VerifyError::Malformed(Malformed::Unparsable))
        );
        assert_eq!(m(""), Err(VerifyError::Malformed(Malformed::Unparsable)));
        assert_eq!(
            m("mailto:x@y?exp=1&sig=a"),
            Err(VerifyError::Malformed(Malformed::Unparsable))
        );
        assert_eq!(
            m("/v?sig=abc"),
            Err(VerifyError::Malformed(Malformed::MissingExp))
        );
        assert_eq!(m("/v"), Err(VerifyError::Malformed(Malformed::MissingExp)));
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "12abc",
            "99999999999999999999999",
            "%31%ff",
        ] {
            assert_eq!(
                m(&format!("/v?exp={bad}&sig=abc")),
                Err(VerifyError::Malformed(Malformed::InvalidExp)),
                "exp={bad}"
            );
        }
        assert_eq!(
            m("/v?exp=10"),
            Err(VerifyError::Malformed(Malformed::MissingSig))
        );
        for bad in ["abc", &"A".repeat(44), &format!("{}B", "A".repeat(42))] {
            assert_eq!(
                m(&format!("/v?exp=10&sig={bad}")),
                Err(VerifyError::Malformed(Malformed::InvalidSig)),
                "sig={bad}"
            );
        }
        assert_eq!(
            VerifyError::Malformed(Malformed::MissingSig).to_string(),
            "malformed signed URL: missing sig"
        );
    }

    #[test]
    fn empty_secret_is_refused_and_never_verifies() {
        let err = sign_at("/v", &Secret::new(""), Duration::from_secs(1), at(0)).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::Validation);
        // A URL signed with an empty key by someone else still fails here.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"").unwrap();
        mac.update(b"/v?exp=10");
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            verify(&format!("/v?exp=10&sig={sig}"), &Secret::new(""), at(0)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn sign_rejects_unparsable_urls_naming_the_field() {
        let err = sign("pod.example/x", &secret(), Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Validation);
        assert!(err.to_string().contains("url"), "{err}");
    }

    #[test]
    fn fragment_is_kept_and_not_signed() {
        let url = sign_at("/v?id=1#t=10", &secret(), Duration::from_secs(5), at(0)).unwrap();
        assert!(url.ends_with("#t=10"), "{url}");
        assert!(verify(&url, &secret(), at(0)).is_ok());
    }

    #[test]
    fn spawn_minted_secret_signs_and_verifies_through_the_env_value() {
        let (handle, env) = crate::auth::AuthHandle::mint(crate::AuthMode::SignedUrl);
        let secret = handle.unwrap().signing_secret.unwrap();
        let pod_side = Secret::new(env[crate::auth::SIGNING_SECRET_ENV].clone());
        let url = sign_at(
            "https://pod/media/a.mp4",
            &secret,
            Duration::from_secs(60),
            at(0),
        )
        .unwrap();
        assert!(verify(&url, &pod_side, at(60)).is_ok());
    }
}
