//! peapod's one HTTP/1.1 client, for registry pulls and for the pod runtime's `httpGet` probes
//! and hooks: GET only, one request per connection (`Connection: close`), Content-Length,
//! chunked or close-delimited bodies. `https://` goes over rustls with a configuration from
//! [`super::tls::config`] (verified for pulls, unverified for probes); the HTTP code is the same
//! for both, generic over the stream.
//!
//! [`send`] is one exchange: the caller picks the `Host`, the headers, an optional deadline for
//! the whole exchange, and what to do with a redirect; its failures name the stage
//! ([`HttpError`]) so that each caller words them its own way (probes as Go's client does).
//! [`get`] is the registry's: redirects followed, errors as [`ImageError`]s.

use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use rustls::InvalidMessage;
use rustls::pki_types::ServerName;

use super::ImageError;
use super::tls::{self, TlsConfig};

/// Each connect, read and write of an exchange without a deadline.
const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEADER_BYTES: usize = 64 << 10;
const MAX_REDIRECTS: usize = 5;
/// `scheme://host[:port]/path?query`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    /// `host[:port]` as written.
    pub authority: String,
    /// `/path?query`
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, ImageError> {
        let bad = || ImageError::Registry(format!("parse URL `{s}`"));
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        Ok(Url {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// Resolve a `Location` header against this URL.
    pub fn join(&self, location: &str) -> Result<Url, ImageError> {
        if location.contains("://") {
            Url::parse(location)
        } else if location.starts_with('/') {
            Ok(Url {
                path: location.to_string(),
                ..self.clone()
            })
        } else {
            Err(ImageError::Registry(format!(
                "follow relative redirect `{location}`"
            )))
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)
    }
}

/// One GET.
pub struct Request<'a> {
    pub url: &'a Url,
    /// The `Host` header; the URL's authority when `None`.
    pub host: Option<&'a str>,
    /// Sent after `Host`, in order; `Connection: close` comes last.
    pub headers: &'a [(&'a str, String)],
    /// When the whole exchange must be over: connect, TLS handshake, request, response head and
    /// the reads of the body. Without one, each connect, read and write may take 60 s.
    pub deadline: Option<Instant>,
}

/// Why an exchange failed, by stage; the caller words it.
#[derive(Debug)]
pub enum HttpError {
    /// Neither `http` nor `https` (or `https` without a TLS configuration).
    Scheme(String),
    /// A header (named) whose value has a line break.
    LineBreak(String),
    /// Looking up the host failed.
    Resolve(io::Error),
    /// The host has no address.
    NoAddress,
    /// No address took the connection: the last error (`TimedOut` at the deadline).
    Connect(io::Error),
    /// The deadline passed before the response head was complete.
    Deadline,
    /// The host is no TLS server name: the reason.
    ServerName(String),
    /// rustls refused to start a connection.
    TlsSetup(rustls::Error),
    /// The TLS handshake failed (a `rustls::Error` inside when TLS itself said no).
    Handshake(io::Error),
    /// Sending the request failed.
    Send(io::Error),
    /// Reading the response head failed.
    Read(io::Error),
    /// The connection closed before the response head was complete.
    Eof,
    /// The response head is not HTTP/1.x.
    Malformed {
        reason: httparse::Error,
        first_line: String,
    },
    /// The response head is over 64 KiB.
    TooLarge,
    /// A Content-Length that is no number.
    ContentLength(String),
}

/// A response whose body is read as a stream.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Read>,
    /// The URL that answered (after redirects).
    pub url: Url,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The whole body, at most `limit` bytes.
    pub fn bytes(mut self, limit: u64) -> Result<Vec<u8>, ImageError> {
        let mut v = Vec::new();
        (&mut self.body)
            .take(limit + 1)
            .read_to_end(&mut v)
            .map_err(|e| ImageError::Registry(format!("read response of GET {}: {e}", self.url)))?;
        if v.len() as u64 > limit {
            return Err(ImageError::Registry(format!(
                "response of GET {} is over {limit} bytes",
                self.url
            )));
        }
        Ok(v)
    }

    /// The first `limit` bytes of the body into `out`: more is not read, and no error (Go's
    /// `ReadAtMost` as kubelet uses it). On an error, `out` holds what arrived before it.
    pub fn read_prefix(&mut self, limit: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let limit = u64::try_from(limit.saturating_sub(out.len())).unwrap_or(u64::MAX);
        (&mut self.body).take(limit).read_to_end(out).map(|_| ())
    }
}

fn find<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `GET url` with `headers`, following redirects; the Authorization header is only sent to the
/// host it was meant for. `https://` URLs use `tls`. (Registry pulls.)
pub fn get(url: &Url, headers: &[(&str, String)], tls: &TlsConfig) -> Result<Response, ImageError> {
    let mut url = url.clone();
    let origin = url.authority.clone();
    let agent = format!("peapod/{}", env!("CARGO_PKG_VERSION"));
    for _ in 0..=MAX_REDIRECTS {
        let hs: Vec<(&str, String)> = std::iter::once(("User-Agent", agent.clone()))
            .chain(
                headers
                    .iter()
                    .filter(|(k, _)| {
                        url.authority == origin || !k.eq_ignore_ascii_case("authorization")
                    })
                    .cloned(),
            )
            .collect();
        let req = Request {
            url: &url,
            host: None,
            headers: &hs,
            deadline: None,
        };
        let r = send(&req, Some(tls)).map_err(|e| registry_error(&url, e))?;
        if matches!(r.status, 301 | 302 | 303 | 307 | 308) {
            let loc = r.header("location").ok_or_else(|| {
                ImageError::Registry(format!("GET {url}: redirect without Location"))
            })?;
            url = url.join(loc)?;
            continue;
        }
        return Ok(r);
    }
    Err(ImageError::Registry(format!(
        "GET {url}: more than {MAX_REDIRECTS} redirects"
    )))
}

/// A failure of a registry request in words, naming the URL (and for TLS the registry and the
/// fix).
fn registry_error(url: &Url, e: HttpError) -> ImageError {
    let host = url.authority.clone();
    let tls = |reason: String| ImageError::Tls {
        host: host.clone(),
        reason,
    };
    let registry = |m: String| ImageError::Registry(m);
    let head = "truncated or oversized HTTP header";
    match e {
        HttpError::Scheme(other) => {
            ImageError::Unsupported(format!("URL scheme `{other}` (`{url}`)"))
        }
        HttpError::LineBreak(k) => registry(format!("header {k} has a line break")),
        HttpError::Resolve(e) => registry(format!("resolve {url}: {e}")),
        HttpError::NoAddress => registry(format!("connect to {url}: no address")),
        HttpError::Connect(e) => registry(format!("connect to {url}: {e}")),
        HttpError::Deadline => registry(format!("GET {url}: timed out")),
        HttpError::ServerName(e) => {
            tls(format!("`{}` is not a valid server name ({e})", url.host()))
        }
        HttpError::TlsSetup(e) => tls(tls::explain(url.host(), &url.authority, &e)),
        HttpError::Handshake(e) => {
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                // The first bytes back are no TLS record: "HTTP/1.1 400 ...".
                Some(rustls::Error::InvalidMessage(
                    InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
                )) => ImageError::NotTls { host },
                Some(t) => tls(tls::explain(url.host(), &url.authority, t)),
                None => tls(format!("handshake failed: {e}")),
            }
        }
        HttpError::Send(e) => registry(format!("send request to {url}: {e}")),
        HttpError::Read(e) => registry(format!("read response from {url}: {e}")),
        HttpError::Eof | HttpError::TooLarge => {
            registry(format!("read response from {url}: {head}"))
        }
        HttpError::Malformed { reason, first_line } => registry(match reason {
            httparse::Error::Version | httparse::Error::Status => {
                format!("read response from {url}: bad status line `{first_line}`")
            }
            r => format!("read response from {url}: malformed HTTP response: {r}"),
        }),
        HttpError::ContentLength(n) => registry(format!("GET {url}: bad Content-Length `{n}`")),
    }
}

impl Url {
    /// The host without port or IPv6 brackets (what a certificate names).
    pub fn host(&self) -> &str {
        if let Some(rest) = self.authority.strip_prefix('[') {
            rest.split(']').next().unwrap_or_default()
        } else {
            self.authority.split(':').next().unwrap_or_default()
        }
    }

    /// `host:port`, with the scheme's default port.
    pub fn host_port(&self) -> String {
        let has_port = if self.authority.starts_with('[') {
            self.authority.contains("]:")
        } else {
            self.authority.contains(':')
        };
        if has_port {
            self.authority.clone()
        } else {
            let port = if self.scheme == "https" { 443 } else { 80 };
            format!("{}:{port}", self.authority)
        }
    }
}

/// The time an operation may take: what is left before `deadline` (`None` once it passed), or
/// [`TIMEOUT`] without one.
fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(TIMEOUT),
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero()),
    }
}

/// A TCP connection to `host_port` (`host:port`, `[v6]:port`): each address in turn, the last
/// error when none answers. A passed `deadline` is a `TimedOut` error.
pub fn connect(host_port: &str, deadline: Option<Instant>) -> Result<TcpStream, HttpError> {
    let addrs: Vec<_> = host_port
        .to_socket_addrs()
        .map_err(HttpError::Resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(HttpError::NoAddress);
    }
    let mut last = io::Error::from(io::ErrorKind::TimedOut);
    for a in addrs {
        let Some(t) = time_left(deadline) else { break };
        match TcpStream::connect_timeout(&a, t) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(HttpError::Connect(last))
}

/// A connection whose reads and writes end at the deadline; without one, each may take
/// [`TIMEOUT`] (set once). At the deadline an operation fails as a timed-out socket does
/// (`EAGAIN`), whether it was waiting or about to start.
struct Timed {
    tcp: TcpStream,
    deadline: Option<Instant>,
}

impl Timed {
    fn new(tcp: TcpStream, deadline: Option<Instant>) -> io::Result<Timed> {
        if deadline.is_none() {
            tcp.set_read_timeout(Some(TIMEOUT))?;
            tcp.set_write_timeout(Some(TIMEOUT))?;
        }
        Ok(Timed { tcp, deadline })
    }

    fn op<T>(
        &mut self,
        write: bool,
        mut f: impl FnMut(&mut TcpStream) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.deadline.is_none() {
            return f(&mut self.tcp);
        }
        loop {
            let left = time_left(self.deadline)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EAGAIN))?;
            if write {
                self.tcp.set_write_timeout(Some(left))?;
            } else {
                self.tcp.set_read_timeout(Some(left))?;
            }
            match f(&mut self.tcp) {
                // A socket timeout can end a little early: wait out the rest.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) && time_left(self.deadline).is_some() => {}
                r => return r,
            }
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.op(false, |s| s.read(buf))
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.op(true, |s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// One exchange without redirects: connect, the TLS handshake for `https://` (with `tls`), the
/// request, and the response head.
pub fn send(req: &Request<'_>, tls: Option<&TlsConfig>) -> Result<Response, HttpError> {
    let url = req.url;
    let tls = match (url.scheme.as_str(), tls) {
        ("http", _) => None,
        ("https", Some(t)) => Some(t),
        (other, _) => return Err(HttpError::Scheme(other.to_string())),
    };
    let tcp = connect(&url.host_port(), req.deadline)?;
    if time_left(req.deadline).is_none() {
        return Err(HttpError::Deadline);
    }
    let s = Timed::new(tcp, req.deadline).map_err(HttpError::Connect)?;
    match tls {
        Some(t) => exchange(req, handshake(url, s, t)?),
        None => exchange(req, s),
    }
}

/// TLS over `s`, the handshake done: certificate problems surface here rather than as an I/O
/// error of the request. An IP address is verified against the certificate's IP SANs, and sent
/// without SNI.
fn handshake(
    url: &Url,
    mut s: Timed,
    tls: &TlsConfig,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, Timed>, HttpError> {
    let name = ServerName::try_from(url.host().to_string())
        .map_err(|e| HttpError::ServerName(e.to_string()))?;
    let mut conn = rustls::ClientConnection::new(tls.clone(), name).map_err(HttpError::TlsSetup)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut s).map_err(HttpError::Handshake)?;
    }
    Ok(rustls::StreamOwned::new(conn, s))
}

/// The request head: `GET path`, `Host`, `headers` in order, `Connection: close`.
pub fn request_head(path: &str, host: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req.into_bytes()
}

/// A response head: status, headers, and its length in bytes (where the body starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub len: usize,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

/// Parse the response head at the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, httparse::Error> {
    // Room for as many headers as there are lines.
    let lines = buf.iter().filter(|&&b| b == b'\n').count();
    let mut headers = vec![httparse::EMPTY_HEADER; lines + 1];
    let mut resp = httparse::Response::new(&mut headers);
    Ok(match resp.parse(buf)? {
        httparse::Status::Partial => None,
        httparse::Status::Complete(len) => Some(Head {
            status: resp.code.unwrap_or(0),
            headers: resp
                .headers
                .iter()
                .map(|h| {
                    let v = String::from_utf8_lossy(h.value);
                    (h.name.to_string(), v.trim().to_string())
                })
                .collect(),
            len,
        }),
    })
}

/// Read a response head from `r`: the head and the bytes read after it.
fn read_head(r: &mut impl Read, deadline: bool) -> Result<(Head, Vec<u8>), HttpError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Err(HttpError::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if deadline
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                return Err(HttpError::Deadline);
            }
            Err(e) => return Err(HttpError::Read(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Ok(Some(h)) => {
                let rest = buf.split_off(h.len);
                return Ok((h, rest));
            }
            Ok(None) if buf.len() > MAX_HEADER_BYTES => return Err(HttpError::TooLarge),
            Ok(None) => {}
            Err(reason) => {
                let first = buf.split(|&b| b == b'\n').next().unwrap_or_default();
                return Err(HttpError::Malformed {
                    reason,
                    first_line: String::from_utf8_lossy(first).trim_end().to_string(),
                });
            }
        }
    }
}

/// One request and the head of its response over a fresh connection `s`, plain or TLS.
pub fn exchange<S: Read + Write + 'static>(
    req: &Request<'_>,
    mut s: S,
) -> Result<Response, HttpError> {
    let url = req.url;
    let host = req.host.unwrap_or(&url.authority);
    let host_header = [("Host", host.to_string())];
    if let Some((k, _)) = host_header
        .iter()
        .chain(req.headers)
        .find(|(_, v)| v.contains(['\r', '\n']))
    {
        return Err(HttpError::LineBreak(k.to_string()));
    }
    s.write_all(&request_head(&url.path, host, req.headers))
        .and_then(|()| s.flush())
        .map_err(HttpError::Send)?;
    let (head, rest) = read_head(&mut s, req.deadline.is_some())?;
    let r = BufReader::with_capacity(64 << 10, Cursor::new(rest).chain(s));
    let body: Box<dyn Read> = if head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        Box::new(Chunked {
            inner: r,
            left: 0,
            done: false,
        })
    } else if let Some(n) = head.header("content-length") {
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| HttpError::ContentLength(n.to_string()))?;
        Box::new(Exact { inner: r, left: n })
    } else {
        Box::new(r)
    };
    Ok(Response {
        status: head.status,
        headers: head.headers,
        body,
        url: url.clone(),
    })
}

fn read_line(r: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64)
        .read_until(b'\n', &mut line)?;
    *budget = budget.saturating_sub(n);
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated or oversized HTTP header",
        ));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

/// A Content-Length body: a connection closed early is an error, not a short blob.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the body ended",
            ));
        }
        self.left -= got as u64;
        Ok(got)
    }
}

/// `Transfer-Encoding: chunked`
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut budget = 4096;
            let line = read_line(&mut self.inner, &mut budget)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            self.left = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if self.left == 0 {
                // Trailers, then the final empty line.
                while !read_line(&mut self.inner, &mut budget)?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunk",
            ));
        }
        self.left -= got as u64;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_redirect_targets() {
        let u = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert_eq!(u.authority, "127.0.0.1:5000");
        assert_eq!(u.path, "/v2/");
        assert_eq!(
            u.join("/x?y=1").unwrap().to_string(),
            "http://127.0.0.1:5000/x?y=1"
        );
        assert_eq!(Url::parse("https://a.b").unwrap().path, "/");
        assert!(Url::parse("nourl").is_err());
        assert!(Url::parse("http://user@host/").is_err());
    }

    #[test]
    fn https_with_a_trusted_ca_an_unknown_one_and_a_wrong_name() {
        let pki = tls::test_pki::make(&["127.0.0.1"]);
        let port = tls::test_pki::serve(pki.server, |path| match path {
            "/r" => b"HTTP/1.1 302 Found\r\nLocation: /hello\r\nContent-Length: 0\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        });
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca.crt");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let trusted = tls::client_config(Vec::new(), &[ca]).unwrap();
        let url = Url::parse(&format!("https://127.0.0.1:{port}/r")).unwrap();
        let r = get(&url, &[], &trusted).unwrap();
        assert_eq!((r.status, r.url.path.as_str()), (200, "/hello"));
        assert_eq!(r.bytes(100).unwrap(), b"hello");

        let untrusted = tls::client_config(Vec::new(), &[]).unwrap();
        let e = get(&url, &[], &untrusted).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "tls connection to 127.0.0.1:{port}: certificate not trusted (unknown issuer); \
                 hint: add its CA with --cert-dir DIR or as /etc/containers/certs.d/127.0.0.1:{port}/ca.crt"
            )
        );
        // The certificate names 127.0.0.1 only.
        let url = Url::parse(&format!("https://localhost:{port}/hello")).unwrap();
        let e = get(&url, &[], &trusted).err().unwrap();
        assert!(
            e.to_string()
                .ends_with("certificate is not valid for `localhost`; hint: pull by a name the certificate lists"),
            "{e}"
        );
    }

    #[test]
    fn chunked_and_exact_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n";
        let (h, rest) = read_head(&mut &raw[..], false).unwrap();
        assert_eq!((h.status, h.headers.len()), (200, 1));
        let mut body = String::new();
        Chunked {
            inner: BufReader::new(&rest[..]),
            left: 0,
            done: false,
        }
        .read_to_string(&mut body)
        .unwrap();
        assert_eq!(body, "abcde");
        let mut short = Exact {
            inner: &b"abc"[..],
            left: 5,
        };
        let mut v = Vec::new();
        assert!(short.read_to_end(&mut v).is_err());
        assert!(read_head(&mut &b"SMTP 200\r\n\r\n"[..], false).is_err());
        assert!(read_head(&mut &b"HTTP/1.1 200 OK\r\nX: y"[..], false).is_err());
    }

    #[test]
    fn heads_parse_incrementally() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        let h = parse_head(b"HTTP/1.1 301 Moved\r\nLocation: /new\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.header("location"), h.len),
            (301, Some("/new"), 38)
        );
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
