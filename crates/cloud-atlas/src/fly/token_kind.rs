//! How a Fly API token is sent: `FlyV1 <macaroons>` for macaroon sets, `Bearer` otherwise.
//!
//! Shared by the Fly Machines provider and the Fly platform-ops clients, so both
//! authenticate the same way.

use crate::auth::Secret;

/// Macaroon prefixes Fly issues (`fm1r_`, `fm1a_`, `fm2_`).
pub const MACAROON_PREFIXES: &[&str] = &["fm1r_", "fm1a_", "fm2_"];

/// A Fly token ready to put in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlyAuth {
    /// `FlyV1` or `Bearer`.
    pub scheme: &'static str,
    /// The credential after the scheme (macaroons comma-joined).
    pub credential: Secret,
}

impl FlyAuth {
    /// Parse a token as found in `FLY_API_TOKEN`, `~/.fly/config.yml` or
    /// `fly tokens create` output: an optional scheme prefix (`FlyV1 `/`Bearer `), then
    /// comma-separated parts. Any macaroon part makes it `FlyV1` with only the macaroon
    /// parts kept; otherwise `Bearer` with the first part. `None` when empty.
    pub fn parse(raw: &str) -> Option<FlyAuth> {
        let mut t = raw.trim();
        for p in ["FlyV1 ", "flyv1 ", "Bearer ", "bearer "] {
            if let Some(rest) = t.strip_prefix(p) {
                t = rest.trim();
            }
        }
        let parts: Vec<&str> = t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let macaroons: Vec<&str> = parts
            .iter()
            .copied()
            .filter(|p| MACAROON_PREFIXES.iter().any(|m| p.starts_with(m)))
            .collect();
        if !macaroons.is_empty() {
            return Some(FlyAuth {
                scheme: "FlyV1",
                credential: Secret::new(macaroons.join(",")),
            });
        }
        parts.first().map(|p| FlyAuth {
            scheme: "Bearer",
            credential: Secret::new(*p),
        })
    }

    /// The full header value: `FlyV1 fm2_…` or `Bearer …`.
    pub fn header_value(&self) -> Secret {
        Secret::new(format!("{} {}", self.scheme, self.credential.expose()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let a = FlyAuth::parse("FlyV1 fm2_abc,fm1r_def").unwrap();
        assert_eq!(a.scheme, "FlyV1");
        assert_eq!(a.credential.expose(), "fm2_abc,fm1r_def");
        let b = FlyAuth::parse("  user-token-xyz ").unwrap();
        assert_eq!(b.scheme, "Bearer");
        assert_eq!(b.header_value().expose(), "Bearer user-token-xyz");
        let c = FlyAuth::parse("legacy,fm1a_zzz").unwrap();
        assert_eq!(c.credential.expose(), "fm1a_zzz");
        assert!(FlyAuth::parse("  ").is_none());
    }
}
