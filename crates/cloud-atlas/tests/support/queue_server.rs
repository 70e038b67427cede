//! A scripted local HTTP/1.1 server for fault tests.
//!
//! Each request it receives (on any connection, keep-alive included) takes the next
//! [`Action`] from the queue; when the queue is empty it answers `500` with a body
//! saying so. It records what it received (method, target, headers, body, arrival
//! time), so tests assert behaviour — how many attempts, how far apart — rather than
//! timing of the code under test.
//!
//! Response bodies may contain `{authorization}` and `{target}` placeholders, which
//! are replaced by the request's `Authorization` header and request target (path and
//! query): a server that echoes credentials back, as some real APIs do in errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer with this status, headers and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Read the request, then close the connection without answering.
    Drop,
    /// Send the head (announcing `Content-Length` of the full body) and the first
    /// `sent` bytes of `body`, then hold the connection for `hold` and close it.
    StallBody {
        status: u16,
        body: String,
        sent: usize,
        hold: Duration,
    },
    /// Read the request and answer nothing for `hold`, then close the connection.
    Stall(Duration),
}

impl Action {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: impl Into<String>) -> Action {
        Action::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }
    /// `status` with a JSON body and one extra header.
    pub fn json_with(status: u16, header: (&str, &str), body: impl Into<String>) -> Action {
        Action::Respond {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (header.0.into(), header.1.into()),
            ],
            body: body.into(),
        }
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method (`GET`).
    pub method: String,
    /// Request target: path and query (`/v1/x?a=b`).
    pub target: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// When the whole request had arrived.
    pub at: Instant,
}

impl Received {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<Action>>,
    received: Mutex<Vec<Received>>,
}

/// The server; stops when dropped.
#[derive(Debug)]
pub struct QueueServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl QueueServer {
    /// Listen on `127.0.0.1:0` and answer with `actions` in order.
    pub async fn start(actions: impl IntoIterator<Item = Action>) -> QueueServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            queue: Mutex::new(actions.into_iter().collect()),
            received: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = Arc::clone(&s);
                tokio::spawn(async move { serve(sock, s).await });
            }
        });
        QueueServer { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queue more actions.
    pub fn push(&self, a: Action) {
        self.shared.queue.lock().unwrap().push_back(a);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// Gaps between consecutive request arrivals.
    pub fn gaps(&self) -> Vec<Duration> {
        let r = self.received();
        r.windows(2).map(|w| w[1].at - w[0].at).collect()
    }
}

impl Drop for QueueServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A local port with nothing listening on it.
pub async fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

async fn serve(mut sock: TcpStream, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(req) = read_request(&mut sock, &mut buf).await else {
            return;
        };
        shared.received.lock().unwrap().push(req.clone());
        let action = shared.queue.lock().unwrap().pop_front();
        let action = action.unwrap_or_else(|| {
            Action::json(500, r#"{"error":"queue server: no scripted action left"}"#)
        });
        match action {
            Action::Respond {
                status,
                headers,
                body,
            } => {
                let body = fill(&body, &req);
                let mut head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
                    reason(status),
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                if sock.write_all(head.as_bytes()).await.is_err()
                    || sock.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
            Action::Drop => return,
            Action::StallBody {
                status,
                body,
                sent,
                hold,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    reason(status),
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock
                    .write_all(&body.as_bytes()[..sent.min(body.len())])
                    .await;
                let _ = sock.flush().await;
                tokio::time::sleep(hold).await;
                return;
            }
            Action::Stall(hold) => {
                tokio::time::sleep(hold).await;
                return;
            }
        }
    }
}

fn fill(body: &str, req: &Received) -> String {
    body.replace("{authorization}", req.header("authorization").unwrap_or(""))
        .replace("{target}", &req.target)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Read one request (head + `Content-Length` body); `None` at EOF or on garbage.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buf.len() < body_start + len {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[body_start..body_start + len].to_vec();
    buf.drain(..body_start + len);
    Some(Received {
        method,
        target,
        headers,
        body,
        at: Instant::now(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
