//! `atlas token …` (preshared bearer tokens) and `atlas url …` (signed URLs).
//!
//! Secrets and tokens are read from an env var or stdin, never from argv, so they
//! stay out of shell history and `ps`. `verify` prints the reason and exits
//! [`EXIT_INVALID`] (3) when the token or URL is not valid.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use cloud_atlas::auth::{signed_url, token, Secret, SIGNING_SECRET_ENV};
use cloud_atlas::{Error, Result};

/// Exit code of a `verify` whose token or URL is not valid.
pub const EXIT_INVALID: u8 = 3;

/// `atlas token …`
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Mint a bearer token: 32 random bytes, base64url. Shown once; store only the hash.
    Mint {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Check a token read from stdin against its SHA-256 hex hash (exit 3 when it does not match).
    Verify {
        /// Lowercase or uppercase hex SHA-256 of the token, as `token mint` printed it.
        #[arg(long, value_name = "H")]
        hash: String,
    },
}

/// `atlas url …`
#[derive(Debug, Subcommand)]
pub enum UrlCmd {
    /// Sign a URL (absolute, or a path-and-query) so it is valid for `--expires-in`.
    Sign {
        /// The URL to sign.
        url: String,
        #[command(flatten)]
        secret: SecretSource,
        /// How long the URL stays valid (`90s`, `15m`, `1h`, `7d`).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
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
pub struct SecretSource {
    /// Env var holding the signing secret.
    #[arg(long, value_name = "VAR", default_value = SIGNING_SECRET_ENV)]
    secret_env: String,
    /// Read the signing secret from the first line of stdin instead.
    #[arg(long)]
    secret_stdin: bool,
}

/// Output format of `token mint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object.
    Json,
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 15m, 1h, 7d)"))
}

/// What the commands read from the outside world (injectable for tests).
pub struct Io<'a> {
    /// Standard input.
    pub stdin: &'a mut dyn BufRead,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Env lookup.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Run `atlas token …`.
///
/// # Errors
/// `Validation` for a malformed `--hash` or an empty token.
pub fn run_token(cmd: TokenCmd, io: Io<'_>) -> Result<ExitCode> {
    match cmd {
        TokenCmd::Mint { output } => {
            let t = token::mint();
            let env = t.env();
            match output {
                Format::Json => {
                    let v = serde_json::json!({
                        "token": t.token.expose(),
                        "hash": t.hash,
                        "header": t.header.expose(),
                        "env": env,
                    });
                    writeln!(io.stdout, "{v}").map_err(write_err)?;
                }
                Format::Text => {
                    let out = format!(
                        "token:  {}\nhash:   {}\nheader: {}\nenv:    {}={}\n",
                        t.token.expose(),
                        t.hash,
                        t.header.expose(),
                        token::PRESHARED_KEY_ENV,
                        t.token.expose(),
                    );
                    io.stdout.write_all(out.as_bytes()).map_err(write_err)?;
                }
            }
            Ok(ExitCode::SUCCESS)
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
            if token::verify(candidate.expose(), h) {
                writeln!(io.stdout, "valid").map_err(write_err)?;
                Ok(ExitCode::SUCCESS)
            } else {
                writeln!(io.stdout, "invalid: token does not match the hash").map_err(write_err)?;
                Ok(ExitCode::from(EXIT_INVALID))
            }
        }
    }
}

/// Run `atlas url …`.
///
/// # Errors
/// `Validation` when the secret's env var is unset or empty, stdin has no secret, or
/// (for `sign`) the URL cannot be parsed.
pub fn run_url(cmd: UrlCmd, io: Io<'_>) -> Result<ExitCode> {
    match cmd {
        UrlCmd::Sign {
            url,
            secret,
            expires_in,
        } => {
            let secret = secret.read(io.stdin, io.env)?;
            let signed = signed_url::sign(&url, &secret, expires_in)?;
            writeln!(io.stdout, "{signed}").map_err(write_err)?;
            Ok(ExitCode::SUCCESS)
        }
        UrlCmd::Verify { url, secret } => {
            let secret = secret.read(io.stdin, io.env)?;
            match signed_url::verify(&url, &secret, SystemTime::now()) {
                Ok(v) => {
                    let left = v.expires_at.saturating_sub(unix_now());
                    writeln!(
                        io.stdout,
                        "valid: expires at {} ({} left)",
                        v.expires_at,
                        humantime::format_duration(Duration::from_secs(left))
                    )
                    .map_err(write_err)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    writeln!(io.stdout, "invalid: {e}").map_err(write_err)?;
                    Ok(ExitCode::from(EXIT_INVALID))
                }
            }
        }
    }
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

/// The first line of stdin without its line ending; empty is an error.
fn read_line(stdin: &mut dyn BufRead, what: &str) -> Result<Secret> {
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| Error::validation("stdin", format!("cannot read the {what}: {e}")))?;
    let value = line.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(Error::validation(
            "stdin",
            format!("expected the {what} on the first line of stdin"),
        ));
    }
    Ok(Secret::new(value))
}

fn write_err(e: std::io::Error) -> Error {
    Error::new(
        cloud_atlas::ErrorKind::Unknown,
        format!("writing to stdout: {e}"),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

    fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (Result<ExitCode>, String) {
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
        let code = match cli {
            Cli::Token(c) => run_token(c, io),
            Cli::Url(c) => run_url(c, io),
        };
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn mint_json_then_verify_from_stdin() {
        let (code, out) = run(&["token", "mint", "-o", "json"], "", &[]);
        assert_eq!(code.unwrap(), ExitCode::SUCCESS);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let (t, h) = (v["token"].as_str().unwrap(), v["hash"].as_str().unwrap());
        assert_eq!(v["env"]["ATLAS_PRESHARED_KEY"], t);
        assert_eq!(v["header"], format!("Authorization: Bearer {t}"));
        let (code, out) = run(&["token", "verify", "--hash", h], &format!("{t}\n"), &[]);
        assert_eq!(
            (code.unwrap(), out.as_str()),
            (ExitCode::SUCCESS, "valid\n")
        );
        let (code, out) = run(&["token", "verify", "--hash", h], "other\n", &[]);
        assert_eq!(code.unwrap(), ExitCode::from(EXIT_INVALID));
        assert!(out.starts_with("invalid: "));
    }

    #[test]
    fn bad_hash_and_empty_stdin_are_validation_errors() {
        let (code, _) = run(&["token", "verify", "--hash", "xyz"], "t\n", &[]);
        assert!(code.unwrap_err().to_string().contains("--hash"));
        let h = token::hash("t");
        let (code, _) = run(&["token", "verify", "--hash", &h], "", &[]);
        assert!(code.unwrap_err().to_string().contains("stdin"));
    }

    #[test]
    fn url_sign_and_verify_with_env_or_stdin_secret() {
        let env = [("POD_SECRET", "s3cr3t")];
        let (code, signed) = run(
            &[
                "url",
                "sign",
                "https://pod/media/a.mp4?w=1",
                "--secret-env",
                "POD_SECRET",
            ],
            "",
            &env,
        );
        assert_eq!(code.unwrap(), ExitCode::SUCCESS);
        let signed = signed.trim();
        let (code, out) = run(
            &["url", "verify", signed, "--secret-stdin"],
            "s3cr3t\n",
            &[],
        );
        assert_eq!(code.unwrap(), ExitCode::SUCCESS, "{out}");
        let (code, out) = run(&["url", "verify", signed, "--secret-stdin"], "wrong\n", &[]);
        assert_eq!(code.unwrap(), ExitCode::from(EXIT_INVALID));
        assert_eq!(out, "invalid: bad signature\n");
        let (code, _) = run(&["url", "verify", signed], "", &[]);
        let err = code.unwrap_err().to_string();
        assert!(err.contains("ATLAS_SIGNING_SECRET"), "{err}");
        assert!(
            Cli::try_parse_from(["atlas", "url", "sign", "/x", "--expires-in", "soon"]).is_err()
        );
    }
}
