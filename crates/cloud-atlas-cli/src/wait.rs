//! Waiting for compute to come up, with visible progress.
//!
//! On a terminal the progress is an indicatif spinner on stderr; otherwise each status
//! change is one line (on stderr for `spawn --wait`, on stdout for the demo's transcript).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use cloud_atlas::wait::{Backoff, Poll, Window};
use cloud_atlas::{Checked, Compute, ComputeStatus, Error, ErrorKind, Provider, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// First pause between polls; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(200);
/// Longest pause between polls.
const MAX_POLL: Duration = Duration::from_secs(2);

/// Where progress is shown.
#[derive(Debug)]
pub(crate) struct Progress {
    sink: Sink,
    last: Option<String>,
}

#[derive(Debug)]
enum Sink {
    Spinner(ProgressBar),
    Stderr,
    Stdout {
        indent: &'static str,
    },
    #[cfg(test)]
    Silent,
}

impl Progress {
    /// A spinner when stderr is a terminal, else one line per status change on stderr.
    pub(crate) fn on_stderr() -> Progress {
        let sink = if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
                pb.set_style(style);
            }
            pb.enable_steady_tick(Duration::from_millis(100));
            Sink::Spinner(pb)
        } else {
            Sink::Stderr
        };
        Progress { sink, last: None }
    }

    /// One line per status change on stdout (for narrated transcripts).
    pub(crate) fn on_stdout(indent: &'static str) -> Progress {
        Progress {
            sink: Sink::Stdout { indent },
            last: None,
        }
    }

    /// Records statuses without printing (unit tests).
    #[cfg(test)]
    fn silent() -> Progress {
        Progress {
            sink: Sink::Silent,
            last: None,
        }
    }

    fn observe(&mut self, id: &str, status: &str, elapsed: Duration) {
        if self.last.as_deref() == Some(status) {
            return;
        }
        self.last = Some(status.to_string());
        let secs = elapsed.as_secs_f64();
        match &self.sink {
            Sink::Spinner(pb) => pb.set_message(format!("waiting for {id}: {status}")),
            Sink::Stderr => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "waiting for {id}: {status} ({secs:.1}s)"
                );
            }
            Sink::Stdout { indent } => {
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "{indent}· {status:<13} after {secs:.1}s"
                );
            }
            #[cfg(test)]
            Sink::Silent => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Sink::Spinner(pb) = &self.sink {
            pb.finish_and_clear();
        }
    }
}

/// Poll `get` until `id` is running, reporting each status change to `progress`.
///
/// # Errors
/// `Timeout` naming the last status after `timeout`; `Provider` when the compute ends
/// in a terminal state; whatever `get` fails with.
pub(crate) async fn until_running(
    provider: &Checked,
    id: &str,
    timeout: Duration,
    progress: &mut Progress,
) -> Result<Compute> {
    // The probe runs in a future, so the progress it reports to is shared with it.
    let progress = std::sync::Mutex::new(progress);
    let progress = &progress;
    cloud_atlas::wait::until(
        timeout,
        Backoff {
            first: FIRST_POLL,
            max: MAX_POLL,
        },
        |w: Window| async move {
            let c = provider.get(id).await?;
            progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(id, c.status.as_str(), w.elapsed());
            if c.status == ComputeStatus::Running {
                return Ok(Poll::Ready(c));
            }
            if c.status.is_terminal() {
                return Err(Error::new(
                    ErrorKind::Provider,
                    format!("{id} became {} while waiting for it to run", c.status),
                )
                .with_provider(provider.name().to_string())
                .with_operation("wait"));
            }
            Ok(Poll::Pending(c.status.to_string()))
        },
        |last| {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "{id} still {last} after {}; it keeps running (and billing): wait with a bigger --timeout or `atlas terminate {id}`",
                    humantime::format_duration(timeout)
                ),
            )
            .with_provider(provider.name().to_string())
            .with_operation("wait")
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud_atlas::providers::mock::{Mock, MockOptions};
    use cloud_atlas::{ComputeRequest, Gpu};
    use std::sync::Arc;

    fn mock(boot: Duration) -> Checked {
        Checked::new(Arc::new(Mock::in_memory_with(MockOptions {
            boot_delay: boot,
            ..MockOptions::default()
        })))
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_running() {
        let p = mock(Duration::from_secs(3));
        let req = ComputeRequest::builder()
            .gpu(Gpu::H100)
            .image("i")
            .build()
            .unwrap();
        let c = p.spawn(&req).await.unwrap();
        let mut progress = Progress::silent();
        let c = until_running(&p, &c.id, Duration::from_secs(60), &mut progress)
            .await
            .unwrap();
        assert_eq!(c.status, ComputeStatus::Running);
        assert_eq!(progress.last.as_deref(), Some("running"));
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_naming_status_and_id() {
        let p = mock(Duration::from_secs(3600));
        let req = ComputeRequest::builder().image("i").build().unwrap();
        let c = p.spawn(&req).await.unwrap();
        let mut progress = Progress::silent();
        let e = until_running(&p, &c.id, Duration::from_secs(5), &mut progress)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains(&c.id), "{e}");
        assert!(e.message().contains("provisioning"), "{e}");
    }
}
