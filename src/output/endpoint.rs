//! The HTTP endpoint of `--metrics`: `GET /metrics`, nothing else. Small on
//! purpose, and bounded so that it costs the node little whoever connects:
//! a few connections at once (the rest are closed unread), a request head of
//! at most 8 KiB, one request per connection, a deadline on each, and an end
//! when the node's cancellation token fires.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::{Exposition, Format};

/// Connections served at once; one beyond is closed at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request head read; a longer one is answered 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Bound on one connection, from accept to the last byte of the answer.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

/// Why the endpoint could not start.
#[derive(Debug, Error)]
pub enum EndpointError {
    /// Its listening socket.
    #[error("cannot serve metrics on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The metrics endpoint, bound and ready to serve.
#[derive(Debug)]
pub struct Endpoint {
    listener: TcpListener,
    exposition: Exposition,
}

impl Endpoint {
    /// Listens on `addr` (port 0: the OS chooses).
    pub async fn bind(addr: SocketAddr, exposition: Exposition) -> Result<Endpoint, EndpointError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EndpointError::Bind { addr, source })?;
        Ok(Endpoint {
            listener,
            exposition,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes until `cancel` fires, then waits for the connections
    /// in progress (each ends with `cancel` too).
    pub async fn serve(self, cancel: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = cancel.cancelled() => break,
            };
            let Ok((stream, _)) = accepted else {
                // EMFILE and friends: back off instead of spinning.
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    () = cancel.cancelled() => break,
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // dropped: closed unread
            };
            let exposition = self.exposition.clone();
            let cancel = cancel.clone();
            connections.spawn(async move {
                let _slot = slot;
                tokio::select! {
                    _ = tokio::time::timeout(CONNECTION_DEADLINE, answer(stream, &exposition)) => {}
                    () = cancel.cancelled() => {}
                }
            });
        }
        connections.close();
        connections.wait().await;
    }
}

/// Reads one request head and answers it; the connection then closes.
async fn answer(mut stream: TcpStream, exposition: &Exposition) -> io::Result<()> {
    let response = match read_head(&mut stream).await? {
        None => return Ok(()),
        Some(Head::TooLarge) => Response::plain(431, "Request Header Fields Too Large"),
        Some(Head::Complete(head)) => match route(&head) {
            Route::Metrics(format) => scrape(exposition, format).await,
            Route::NotFound => Response::plain(404, "Not Found"),
            Route::MethodNotAllowed => Response::plain(405, "Method Not Allowed"),
            Route::BadRequest => Response::plain(400, "Bad Request"),
        },
    };
    stream.write_all(&response.bytes()).await?;
    stream.shutdown().await
}

/// Encodes off the async threads: a full table makes tens of thousands of lines.
async fn scrape(exposition: &Exposition, format: Format) -> Response {
    let exposition = exposition.clone();
    match tokio::task::spawn_blocking(move || exposition.encode(format)).await {
        Ok(Ok(text)) => Response {
            status: 200,
            reason: "OK",
            content_type: format.content_type(),
            body: text.into_bytes(),
        },
        Ok(Err(_)) | Err(_) => Response::plain(500, "Internal Server Error"),
    }
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
}

/// The request up to its blank line; `None` when the client closed first.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Head>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = end_of_head(&head) {
            head.truncate(end);
            return Ok(Some(Head::Complete(head)));
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(Some(Head::TooLarge));
        }
    }
}

fn end_of_head(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    crlf.into_iter().chain(lf).min()
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics(Format),
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request head: only `GET /metrics` (any query) is served.
fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let mut lines = head.lines();
    let mut request = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) = (
        request.next(),
        request.next(),
        request.next(),
        request.next(),
    ) else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Route::NotFound;
    }
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    let accept = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim())
    });
    Route::Metrics(Format::negotiate(accept))
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn plain(status: u16, reason: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: format!("{reason}\n").into_bytes(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let allow = if self.status == 405 {
            "Allow: GET\r\n"
        } else {
            ""
        };
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served_in_the_format_asked_for() {
        let cases: [(&str, Route); 7] = [
            ("GET /metrics HTTP/1.1\r\nHost: x", Route::Metrics(Format::Text)),
            (
                "GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                Route::Metrics(Format::OpenMetrics),
            ),
            ("GET / HTTP/1.1", Route::NotFound),
            ("POST /metrics HTTP/1.1", Route::MethodNotAllowed),
            ("GET /metrics", Route::BadRequest),
            ("GET /metrics SMTP/1.0", Route::BadRequest),
            ("\u{0}\u{1}", Route::BadRequest),
        ];
        for (head, expected) in cases {
            assert_eq!(route(head.as_bytes()), expected, "{head:?}");
        }
        assert_eq!(route(&[0xff, 0xfe]), Route::BadRequest);
    }

    #[test]
    fn a_head_ends_at_its_first_blank_line() {
        assert_eq!(end_of_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(20));
        assert_eq!(end_of_head(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(end_of_head(b"GET / HTTP/1.1\r\n"), None);
    }

    #[tokio::test]
    async fn a_scrape_over_tcp_and_the_bounds_on_a_request() {
        let tally = Arc::new(crate::node::tally::Tally::default());
        let (_, exposition) = super::super::metrics::metrics(tally, 4);
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), exposition)
            .await
            .unwrap();
        let addr = endpoint.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let served = tokio::spawn(endpoint.serve(cancel.clone()));
        let exchange = |request: Vec<u8>| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            // The server may answer and close before a long request is all sent.
            let _ = stream.write_all(&request).await;
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response).await;
            response
        };
        let ok = exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\nsdss_peers 0\n"), "{ok}");
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST_HEAD + 2048, b'a');
        let refused = exchange(long).await;
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
        // A client that never finishes its request holds a slot until the
        // node stops, not beyond.
        let _idle = TcpStream::connect(addr).await.unwrap();
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(1), served)
            .await
            .expect("the endpoint stops with the node")
            .unwrap();
    }
}
