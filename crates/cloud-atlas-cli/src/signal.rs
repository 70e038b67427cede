//! SIGINT and SIGTERM for the commands that make machines (`spawn`, `session spawn`,
//! `demo`): they must not die silently with a billing machine and a one-time token
//! nobody saw.
//!
//! A command [`install`](Signals::install)s the handlers before its first call that can
//! bill. A create call in flight is never abandoned half-way: it runs to its outcome
//! under [`Signals::shielded`] and the command then reports what exists. Waiting is
//! [`Signals::interruptible`]. The command prints the machine's id, state and one-time
//! credentials on stderr, and [`Sig::exit`]s with 130 (SIGINT) or 143 (SIGTERM), as a
//! shell reports a process those signals killed. Commands that install nothing keep the
//! default: the signal ends them at once.

use std::future::Future;
use std::io::Write;

use cloud_atlas::{Error, ErrorKind, Result};

/// A signal that asks us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
    /// SIGHUP (the terminal went away); only with [`Signals::install_with_hangup`].
    Hup,
}

impl Sig {
    /// `SIGINT` / `SIGTERM`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sig::Int => "SIGINT",
            Sig::Term => "SIGTERM",
            Sig::Hup => "SIGHUP",
        }
    }

    /// 128 + the signal number: 130, 143 or 129.
    pub(crate) fn code(self) -> i32 {
        match self {
            Sig::Int => 130,
            Sig::Term => 143,
            Sig::Hup => 129,
        }
    }

    /// Flush what was printed and exit with [`Sig::code`].
    pub(crate) fn exit(self) -> ! {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(self.code())
    }
}

/// The installed SIGINT/SIGTERM handlers of one command.
#[derive(Debug)]
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Take over SIGINT and SIGTERM for the rest of the process.
    ///
    /// # Errors
    /// `Unknown` when the handlers cannot be installed.
    pub(crate) fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let failed = |e: std::io::Error| {
            Error::new(ErrorKind::Unknown, "cannot install signal handlers").with_source(e)
        };
        Ok(Signals {
            int: signal(SignalKind::interrupt()).map_err(failed)?,
            term: signal(SignalKind::terminate()).map_err(failed)?,
            hup: None,
        })
    }

    /// [`install`](Self::install), and SIGHUP too: for commands whose children live in
    /// their own process group (`fly deploy`), which a closing terminal does not reach.
    ///
    /// # Errors
    /// As [`install`](Self::install).
    pub(crate) fn install_with_hangup() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut s = Signals::install()?;
        s.hup = Some(signal(SignalKind::hangup()).map_err(|e| {
            Error::new(ErrorKind::Unknown, "cannot install signal handlers").with_source(e)
        })?);
        Ok(s)
    }

    /// The next signal.
    pub(crate) async fn recv(&mut self) -> Sig {
        let hup = async {
            match self.hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => Sig::Int,
            _ = self.term.recv() => Sig::Term,
            _ = hup => Sig::Hup,
        }
    }

    /// Run `fut` to its end whatever arrives meanwhile (a create call must reach its
    /// outcome so what it made can be reported); returns its output and the first
    /// signal that came. Each signal is acknowledged on stderr.
    pub(crate) async fn shielded<F: Future>(&mut self, fut: F) -> (F::Output, Option<Sig>) {
        tokio::pin!(fut);
        let mut caught = None;
        loop {
            tokio::select! {
                out = &mut fut => return (out, caught),
                s = self.recv() => {
                    caught.get_or_insert(s);
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "{}: waiting for the provider to answer the create call, so what it made can be reported",
                        s.name()
                    );
                }
            }
        }
    }

    /// `fut`'s output, or the signal that came first (`fut` is dropped then).
    pub(crate) async fn interruptible<F: Future>(
        &mut self,
        fut: F,
    ) -> std::result::Result<F::Output, Sig> {
        tokio::select! {
            out = fut => Ok(out),
            s = self.recv() => Err(s),
        }
    }
}
