//! A machine's output: what its command wrote to stdout and stderr (one log file per
//! machine, see [`super::process`]). Read the last lines ([`Mock::logs`]) or follow them
//! until the command ends ([`Mock::follow_logs`]).

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::{Mock, NAME};
use crate::error::{Error, ErrorKind, Result};

/// Most bytes of history read for [`Mock::logs`] (the end of the file).
const MAX_HISTORY_BYTES: u64 = 4 * 1024 * 1024;

/// How often [`Mock::follow_logs`] looks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// One line of a mock machine's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogLine {
    /// Line number in the machine's log, from 1.
    pub id: String,
    /// Always `None`: the mock does not stamp lines.
    pub ts: Option<String>,
    /// Always `container` (stdout and stderr of the command).
    pub source: Option<String>,
    /// The text, without the line ending.
    pub line: String,
}

impl LogLine {
    fn new(n: u64, line: &str) -> LogLine {
        LogLine {
            id: n.to_string(),
            ts: None,
            source: Some("container".to_string()),
            line: line.to_string(),
        }
    }
}

impl Mock {
    /// The last `tail` lines of machine `id`'s output (empty for a machine spawned
    /// without a command).
    ///
    /// # Errors
    /// `NotFound` when the machine is gone; `Unknown` when the log cannot be read.
    pub fn logs(&self, id: &str, tail: usize) -> Result<Vec<LogLine>> {
        let m = self.live(id)?;
        let Some(p) = &m.process else {
            return Ok(Vec::new());
        };
        let path = p.log();
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_err(&path, e)),
        };
        let len = f.metadata().map_err(|e| read_err(&path, e))?.len();
        let from = len.saturating_sub(MAX_HISTORY_BYTES);
        f.seek(SeekFrom::Start(from))
            .map_err(|e| read_err(&path, e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| read_err(&path, e))?;
        let text = String::from_utf8_lossy(&buf);
        let mut lines: Vec<&str> = text.lines().collect();
        if from > 0 && !lines.is_empty() {
            // The first line was cut by the window.
            lines.remove(0);
        }
        let skip = lines.len().saturating_sub(tail);
        // Past a cut window the numbers count from the window's start.
        let first = skip as u64 + 1;
        Ok(lines[skip..]
            .iter()
            .zip(first..)
            .map(|(l, n)| LogLine::new(n, l))
            .collect())
    }

    /// Machine `id`'s output from the start, then new lines as they come, ending when
    /// its command has ended and everything it wrote was sent, or the machine is gone.
    ///
    /// # Errors
    /// `NotFound` when the machine is gone before the first read.
    pub fn follow_logs(&self, id: &str) -> Result<BoxStream<'static, Result<LogLine>>> {
        let m = self.live(id)?;
        let Some(p) = &m.process else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let st = Follow {
            mock: self.clone(),
            id: id.to_string(),
            path: p.log(),
            offset: 0,
            partial: Vec::new(),
            ready: std::collections::VecDeque::new(),
            n: 0,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(st, |mut st| async move {
            loop {
                if let Some(l) = st.ready.pop_front() {
                    return Some((Ok(l), st));
                }
                if st.done {
                    return None;
                }
                // Whether the command had ended before this read: then the read sees all.
                let ended = match st.mock.live(&st.id) {
                    Ok(m) => !m.process.as_ref().is_some_and(|p| p.running()),
                    Err(e) if e.kind() == ErrorKind::NotFound => true,
                    Err(e) => return Some((Err(e), Follow { done: true, ..st })),
                };
                if let Err(e) = st.read_more() {
                    return Some((Err(e), Follow { done: true, ..st }));
                }
                if ended {
                    if !st.partial.is_empty() {
                        let rest = std::mem::take(&mut st.partial);
                        st.n += 1;
                        st.ready
                            .push_back(LogLine::new(st.n, &String::from_utf8_lossy(&rest)));
                    }
                    st.done = true;
                    continue;
                }
                if st.ready.is_empty() {
                    tokio::time::sleep(FOLLOW_EVERY).await;
                }
            }
        })))
    }
}

struct Follow {
    mock: Mock,
    id: String,
    path: std::path::PathBuf,
    offset: u64,
    partial: Vec<u8>,
    ready: std::collections::VecDeque<LogLine>,
    n: u64,
    done: bool,
}

impl Follow {
    /// Read what was appended since the last read; complete lines go to `ready`.
    fn read_more(&mut self) -> Result<()> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            // Removed with its machine: nothing more will come.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(read_err(&self.path, e)),
        };
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| read_err(&self.path, e))?;
        let mut buf = Vec::new();
        let n = f
            .read_to_end(&mut buf)
            .map_err(|e| read_err(&self.path, e))?;
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            self.n += 1;
            self.ready
                .push_back(LogLine::new(self.n, text.trim_end_matches('\r')));
        }
        Ok(())
    }
}

fn read_err(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unknown,
        format!("mock cloud: cannot read the log {}: {e}", path.display()),
    )
    .with_provider(NAME)
}
