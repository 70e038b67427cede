//! `atlas token …` (preshared bearer tokens) and `atlas url …` (signed URLs).
//!
//! Secrets and tokens are read from an env var or stdin, never from argv, so they
//! stay out of shell history and `ps`. Only the first line of stdin is read, at most
//! 64 KiB of it. `url sign` asks for a secret of at least 32 bytes. When the token or URL is not valid, `verify`
//! fails with an `Unauthorized` error naming the reason (`error: …` on stderr), which
//! the CLI's exit-code table turns into exit code 3.

use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use cloud_atlas::auth::signed_url::{self, VerifyError};
use cloud_atlas::auth::{token, Secret, SIGNING_SECRET_ENV};
use cloud_atlas::files;
use cloud_atlas::{Error, ErrorKind, Result};

use crate::output::Format;

/// `atlas token …`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Mint a bearer token: 32 random bytes, base64url. Shown once; store only the hash.
    Mint,
    /// Check a token read from stdin against its SHA-256 hex hash (exit 3 when it does not match).
    Verify {
        /// Lowercase or uppercase hex SHA-256 of the token, as `token mint` printed it.
        #[arg(long, value_name = "H")]
        hash: String,
    },
}

/// `atlas url …`
#[derive(Debug, Subcommand)]
pub(crate) enum UrlCmd {
    /// Sign a URL (absolute, or a path-and-query) so it is valid for `--expires-in`.
    Sign {
        /// The URL to sign.
        url: String,
        #[command(flatten)]
        secret: SecretSource,
        /// How long the URL stays valid, 1s to 365d (`90s`, `15m`, `1h`, `7d`).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::flags::limit)]
        expires_in: Duration,
    },
    /// Verify a signed URL now (exit 3 with the reason when it is not valid).
    Verify {
        /// The signed URL (absolute, or the path-and-query the pod received).
        url: String,
        #[command(flatten)]
        secret: SecretSource,
    },
}

/// Where the signing secret comes from: never argv.
#[derive(Debug, Args)]
pub(crate) struct SecretSource {
    /// Env var holding the signing secret.
    #[arg(long, value_name = "VAR", default_value = SIGNING_SECRET_ENV)]
    secret_env: String,
    /// Read the signing secret from the first line of stdin instead.
    #[arg(long)]
    secret_stdin: bool,
}

/// What the commands read from the outside world (injectable for tests).
pub(crate) struct Io<'a> {
    /// Standard input.
    pub(crate) stdin: &'a mut dyn BufRead,
    /// Standard output.
    pub(crate) stdout: &'a mut dyn Write,
    /// Env lookup.
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
}

/// Run `atlas token …` with output in `format` (`-o`).
///
/// # Errors
/// `Validation` for a malformed `--hash` or no token on stdin; `Unauthorized` (exit
/// code 3) when the token does not match the hash.
pub(crate) fn run_token(cmd: TokenCmd, format: Format, io: Io<'_>) -> Result<()> {
    match cmd {
        TokenCmd::Mint => {
            let t = token::mint();
            let json = serde_json::json!({
                "token": t.token.expose(),
                "hash": t.hash,
                "header": t.header.expose(),
                "env": t.env(),
            });
            let text = format!(
                "token:  {}\nhash:   {}\nheader: {}\nenv:    {}={}\n",
                t.token.expose(),
                t.hash,
                t.header.expose(),
                token::PRESHARED_KEY_ENV,
                t.token.expose(),
            );
            emit(io.stdout, format, &json, text)
        }
        TokenCmd::Verify { hash } => {
            let h = hash.trim();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::validation(
                    "--hash",
                    "must be the 64-hex-character SHA-256 that `atlas token mint` printed",
                ));
            }
            let candidate = read_line(io.stdin, "token")?;
            if !token::verify(candidate.expose(), h) {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    "token is not valid: it does not match the hash",
                ));
            }
            let json = serde_json::json!({ "valid": true });
            emit(io.stdout, format, &json, "valid\n".to_string())
        }
    }
}

/// Run `atlas url …` with output in `format` (`-o`).
///
/// # Errors
/// `Validation` when the secret's env var is unset or empty, stdin has no secret, or
/// (for `sign`) the URL cannot be parsed; `Unauthorized` (exit code 3) naming the
/// reason when `verify` finds the URL expired, badly signed or malformed.
pub(crate) fn run_url(cmd: UrlCmd, format: Format, io: Io<'_>) -> Result<()> {
    let now = SystemTime::now();
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match cmd {
        UrlCmd::Sign {
            url,
            secret,
            expires_in,
        } => {
            let secret = secret.read(io.stdin, io.env)?;
            let signed = signed_url::sign_at(&url, &secret, expires_in, now)?;
            let expires_at = now_secs.saturating_add(expires_in.as_secs());
            let json = serde_json::json!({ "url": signed, "expires_at": expires_at });
            emit(io.stdout, format, &json, format!("{signed}\n"))
        }
        UrlCmd::Verify { url, secret } => {
            let secret = secret.read(io.stdin, io.env)?;
            let v = signed_url::verify(&url, &secret, now).map_err(|e| {
                let why = match e {
                    VerifyError::BadSignature => {
                        "signed URL has a bad signature (wrong secret, or the URL was changed)"
                            .to_string()
                    }
                    other => other.to_string(),
                };
                Error::new(ErrorKind::Unauthorized, why)
            })?;
            let left = Duration::from_secs(v.expires_at.saturating_sub(now_secs));
            let json = serde_json::json!({ "valid": true, "expires_at": v.expires_at });
            let text = format!(
                "valid: expires at {} (in {})\n",
                v.expires_at,
                humantime::format_duration(left)
            );
            emit(io.stdout, format, &json, text)
        }
    }
}

/// `run_token` on the process's stdin, stdout and environment.
///
/// # Errors
/// As [`run_token`].
pub(crate) fn token(cmd: TokenCmd, format: Format) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    run_token(
        cmd,
        format,
        Io {
            stdin: &mut std::io::stdin().lock(),
            stdout: &mut std::io::stdout().lock(),
            env: &env,
        },
    )
}

/// `run_url` on the process's stdin, stdout and environment.
///
/// # Errors
/// As [`run_url`].
pub(crate) fn url(cmd: UrlCmd, format: Format) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    run_url(
        cmd,
        format,
        Io {
            stdin: &mut std::io::stdin().lock(),
            stdout: &mut std::io::stdout().lock(),
            env: &env,
        },
    )
}

impl SecretSource {
    fn read(
        &self,
        stdin: &mut dyn BufRead,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret> {
        if self.secret_stdin {
            return read_line(stdin, "signing secret");
        }
        match env(&self.secret_env) {
            Some(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(Error::validation(
                "--secret-env",
                format!(
                    "{} is not set or empty; export the signing secret there, or pass --secret-stdin",
                    self.secret_env
                ),
            )),
        }
    }
}

/// The first line of stdin without its line ending (at most 64 KiB); empty is an error.
fn read_line(stdin: &mut dyn BufRead, what: &str) -> Result<Secret> {
    let line = files::read_first_line(stdin, files::MAX_SECRET_BYTES)
        .map_err(|e| Error::validation("stdin", format!("cannot read the {what}: {e}")))?;
    let value = line.as_str();
    if value.is_empty() {
        return Err(Error::validation(
            "stdin",
            format!("expected the {what} on the first line of stdin"),
        ));
    }
    Ok(Secret::new(value))
}

fn write_out(stdout: &mut dyn Write, text: &str) -> Result<()> {
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::new(ErrorKind::Unknown, "cannot write to stdout").with_source(e))
}

/// `text` for `-o table`, the JSON object for `-o json` (pretty) and `-o jsonl` (one line).
fn emit(
    stdout: &mut dyn Write,
    format: Format,
    json: &serde_json::Value,
    text: String,
) -> Result<()> {
    let out = match format {
        Format::Table => text,
        Format::Json => format!("{json:#}\n"),
        Format::Jsonl => format!("{json}\n"),
    };
    write_out(stdout, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    enum Cli {
        #[command(subcommand)]
        Token(TokenCmd),
        #[command(subcommand)]
        Url(UrlCmd),
    }

    fn run(
        args: &[&str],
        format: Format,
        stdin: &str,
        env: &[(&str, &str)],
    ) -> (Result<()>, String) {
        let cli =
            Cli::try_parse_from(std::iter::once("atlas").chain(args.iter().copied())).unwrap();
        let mut input = stdin.as_bytes();
        let mut out = Vec::new();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let io = Io {
            stdin: &mut input,
            stdout: &mut out,
            env: &lookup,
        };
        let res = match cli {
            Cli::Token(c) => run_token(c, format, io),
            Cli::Url(c) => run_url(c, format, io),
        };
        (res, String::from_utf8(out).unwrap())
    }

    #[test]
    fn mint_json_then_verify_from_stdin() {
        let (res, out) = run(&["token", "mint"], Format::Json, "", &[]);
        res.unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let (t, h) = (v["token"].as_str().unwrap(), v["hash"].as_str().unwrap());
        assert_eq!(v["env"]["ATLAS_PRESHARED_KEY"], t);
        assert_eq!(v["header"], format!("Authorization: Bearer {t}"));
        let (res, out) = run(
            &["token", "verify", "--hash", h],
            Format::Table,
            &format!("{t}\n"),
            &[],
        );
        res.unwrap();
        assert_eq!(out, "valid\n");
        let (res, out) = run(
            &["token", "verify", "--hash", h],
            Format::Table,
            "other\n",
            &[],
        );
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(err.to_string().contains("does not match"), "{err}");
        assert_eq!(out, "");
    }

    #[test]
    fn mint_text_shows_every_part_once() {
        let (res, out) = run(&["token", "mint"], Format::Table, "", &[]);
        res.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[2].starts_with("header: Authorization: Bearer "));
        assert!(lines[3].starts_with("env:    ATLAS_PRESHARED_KEY="));
    }

    #[test]
    fn bad_hash_and_empty_stdin_are_validation_errors() {
        let (res, _) = run(
            &["token", "verify", "--hash", "xyz"],
            Format::Table,
            "t\n",
            &[],
        );
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.to_string().contains("--hash"));
        let h = token::hash("t");
        let (res, _) = run(&["token", "verify", "--hash", &h], Format::Table, "", &[]);
        assert!(res.unwrap_err().to_string().contains("stdin"));
    }

    #[test]
    fn url_sign_and_verify_with_env_or_stdin_secret() {
        let env = [("POD_SECRET", "s3cr3t-0123456789abcdef-0123456789")];
        let args = [
            "url",
            "sign",
            "https://pod/media/a.mp4?w=1",
            "--secret-env",
            "POD_SECRET",
        ];
        let (res, signed) = run(&args, Format::Table, "", &env);
        res.unwrap();
        let signed = signed.trim();
        let (res, out) = run(
            &["url", "verify", signed, "--secret-stdin"],
            Format::Table,
            "s3cr3t-0123456789abcdef-0123456789\n",
            &[],
        );
        res.unwrap();
        assert!(out.starts_with("valid: expires at "), "{out}");
        let (res, out) = run(
            &["url", "verify", signed, "--secret-stdin"],
            Format::Json,
            "s3cr3t-0123456789abcdef-0123456789\n",
            &[],
        );
        res.unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["valid"],
            true
        );
        let (res, _) = run(
            &["url", "verify", signed, "--secret-stdin"],
            Format::Table,
            "wrong\n",
            &[],
        );
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(err.to_string().contains("bad signature"), "{err}");
        let (res, _) = run(&["url", "verify", signed], Format::Table, "", &[]);
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.to_string().contains("ATLAS_SIGNING_SECRET"), "{err}");
        assert!(
            Cli::try_parse_from(["atlas", "url", "sign", "/x", "--expires-in", "soon"]).is_err()
        );
    }
}
