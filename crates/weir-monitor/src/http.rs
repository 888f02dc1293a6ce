//! The HTTP server of a watched run: `GET` of `/` (the web UI),
//! `/app.js`, `/style.css`, `/metrics` (Prometheus), `/api/v1/job`,
//! `/api/v1/metrics` and `/api/v1/schema/job`. HTTP/1.1 with one request
//! per connection, on one thread per connection: a dashboard and a
//! scraper are a handful of requests a second.
//!
//! Where it binds is decided by [`parse_address`]: the loopback interface
//! unless an IP address is written out. It never resolves a host name, so
//! no name can put the metrics on a network interface by accident.
//!
//! May use `super::monitor` and the UI files (embedded at build time).

use crate::Monitor;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use weir_core::error::{Error, Result};

/// Where `--http` binds when given no address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8081";

const INDEX: &str = include_str!("../ui/index.html");
const APP: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");

/// Parses where to listen: empty for [`DEFAULT_ADDRESS`], `PORT` or
/// `:PORT` for the loopback interface, `localhost:PORT`, or an IP address
/// and port (`0.0.0.0:8081` listens on every interface: it has to be
/// written out). A host name is refused, never resolved.
///
/// # Errors
///
/// [`Error::InvalidOption`] naming `option` when `text` is none of these.
///
/// # Examples
///
/// ```
/// use weir_monitor::parse_address;
/// assert_eq!(parse_address("http", "9000").unwrap().to_string(), "127.0.0.1:9000");
/// assert_eq!(parse_address("http", "").unwrap().to_string(), "127.0.0.1:8081");
/// assert!(parse_address("http", "0.0.0.0:9000").unwrap().ip().is_unspecified());
/// assert!(parse_address("http", "metrics.example.com:9000").is_err());
/// ```
pub fn parse_address(option: &str, text: &str) -> Result<SocketAddr> {
    let text = text.trim();
    let loopback = |port: &str| -> Result<SocketAddr> {
        let port: u16 = port.parse().map_err(|_| {
            Error::option(option, format!("`{text}`: `{port}` is not a port number"))
        })?;
        Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    };
    if text.is_empty() {
        return Ok(DEFAULT_ADDRESS.parse().expect("the default address parses"));
    }
    if let Some(port) = text.strip_prefix(':') {
        return loopback(port);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return loopback(text);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        return loopback(port);
    }
    text.parse::<SocketAddr>().map_err(|_| {
        Error::option(
            option,
            format!(
                "`{text}` is not an address to listen on: give PORT (this machine only), \
                 IP:PORT (e.g. 127.0.0.1:8081, or 0.0.0.0:8081 for every interface) or \
                 localhost:PORT; host names are not resolved"
            ),
        )
    })
}

/// Serves a [`Monitor`] over HTTP until dropped.
#[derive(Debug)]
pub struct HttpServer {
    // config
    address: SocketAddr,
    // state
    stop: Arc<AtomicBool>,
    // resources
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `address` (see [`parse_address`]) and serves `monitor` from a
    /// thread of its own.
    ///
    /// # Errors
    ///
    /// A bad address, or one that cannot be bound (in use, not ours).
    pub fn try_bind(address: &str, monitor: Arc<Monitor>) -> Result<Self> {
        let wanted = parse_address("http", address)?;
        let listener = TcpListener::bind(wanted)
            .map_err(|e| Error::option("http", format!("cannot listen on {wanted}: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::option("http", format!("cannot listen on {wanted}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        monitor.set_address(address.to_string());
        let thread = std::thread::Builder::new()
            .name("weir-http".into())
            .spawn(move || accept(listener, monitor, stopping))
            .map_err(|e| Error::option("http", format!("cannot start the server: {e}")))?;
        Ok(HttpServer {
            address,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDRESS/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // wake the blocking accept; the server answers nothing more
        let mut wake = self.address;
        if wake.ip().is_unspecified() {
            wake.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept(listener: TcpListener, monitor: Arc<Monitor>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let monitor = monitor.clone();
        // a slow client never holds up the others
        let _ = std::thread::Builder::new()
            .name("weir-http-conn".into())
            .spawn(move || {
                let _ = serve(stream, &monitor);
            });
    }
}

/// Answers one request.
fn serve(mut stream: TcpStream, monitor: &Monitor) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new((&stream).take(64 * 1024));
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // the headers: read and ignored (no body is accepted)
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET" | "HEAD", _) => route(path, monitor),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

fn route(path: &str, monitor: &Monitor) -> (&'static str, &'static str, String) {
    const JSON: &str = "application/json";
    let json = |v: std::result::Result<String, serde_json::Error>| match v {
        Ok(body) => ("200 OK", JSON, body),
        Err(e) => ("500 Internal Server Error", "text/plain", e.to_string()),
    };
    match path {
        "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", INDEX.to_string()),
        "/app.js" => ("200 OK", "text/javascript; charset=utf-8", APP.to_string()),
        "/style.css" => ("200 OK", "text/css; charset=utf-8", STYLE.to_string()),
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            monitor.prometheus_text(),
        ),
        "/api/v1/job" => json(serde_json::to_string(&monitor.job())),
        "/api/v1/metrics" => json(serde_json::to_string(&monitor.history())),
        "/api/v1/schema/job" => ("200 OK", JSON, crate::JOB_SCHEMA.to_string()),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            format!("no page {path}: try /, /metrics, /api/v1/job or /api/v1/metrics\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::observe::StderrMessages;

    fn get(address: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(address).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn addresses_default_to_loopback_and_names_are_refused() {
        let p = |t: &str| parse_address("http", t).map(|a| a.to_string());
        assert_eq!(p("").unwrap(), "127.0.0.1:8081");
        assert_eq!(p("9000").unwrap(), "127.0.0.1:9000");
        assert_eq!(p(":0").unwrap(), "127.0.0.1:0");
        assert_eq!(p("localhost:7").unwrap(), "127.0.0.1:7");
        assert_eq!(p("[::1]:7").unwrap(), "[::1]:7");
        // written out: every interface, on purpose
        assert_eq!(p("0.0.0.0:9000").unwrap(), "0.0.0.0:9000");
        for bad in [
            "example.com:80",
            "myhost",
            "localhost:http",
            "99999",
            "1.2.3.4",
        ] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains("http") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn it_serves_every_page_and_refuses_the_rest() {
        let monitor = Arc::new(Monitor::new(Arc::new(StderrMessages)));
        let server = HttpServer::try_bind("127.0.0.1:0", monitor.clone()).unwrap();
        let at = server.local_addr();
        assert_ne!(at.port(), 0);
        assert_eq!(monitor.job().address, Some(at.to_string()));
        let ok = |path: &str, kind: &str| {
            let r = get(at, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert!(r.starts_with("HTTP/1.1 200 OK"), "{path}: {r}");
            assert!(r.contains(&format!("Content-Type: {kind}")), "{path}: {r}");
            r
        };
        assert!(ok("/", "text/html").contains("<script src=\"app.js\""));
        ok("/app.js", "text/javascript");
        ok("/style.css", "text/css");
        assert!(ok("/metrics", "text/plain; version=0.0.4").contains("weir_job_info"));
        assert!(ok("/api/v1/job?x=1", "application/json").contains("\"state\":\"created\""));
        ok("/api/v1/metrics", "application/json");
        ok("/api/v1/schema/job", "application/json");
        let r = get(at, "GET /nope HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = get(at, "POST /api/v1/job HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        let r = get(at, "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r}");
        drop(server);
        assert!(TcpStream::connect_timeout(&at, Duration::from_millis(200)).is_err());
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_it() {
        let monitor = Arc::new(Monitor::new(Arc::new(StderrMessages)));
        let first = HttpServer::try_bind("127.0.0.1:0", monitor.clone()).unwrap();
        let taken = first.local_addr().to_string();
        let e = HttpServer::try_bind(&taken, monitor)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&taken) && e.contains("cannot listen"), "{e}");
    }
}
