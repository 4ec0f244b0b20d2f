//! A minimal blocking HTTP/1.1 client for registry pulls: GET only, one request per connection,
//! Content-Length or chunked bodies, redirects. `https://` goes over rustls (see [`super::tls`]
//! for whom it trusts); the HTTP code is the same for both, generic over the stream.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use rustls::InvalidMessage;
use rustls::pki_types::ServerName;

use super::ImageError;
use super::tls::{self, TlsConfig};

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
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
}

/// `GET url` with `headers`, following redirects; the Authorization header is only sent to the
/// host it was meant for. `https://` URLs use `tls`.
pub fn get(url: &Url, headers: &[(&str, String)], tls: &TlsConfig) -> Result<Response, ImageError> {
    let mut url = url.clone();
    let origin = url.authority.clone();
    for _ in 0..=MAX_REDIRECTS {
        let hs: Vec<(&str, String)> = headers
            .iter()
            .filter(|(k, _)| url.authority == origin || !k.eq_ignore_ascii_case("authorization"))
            .cloned()
            .collect();
        let r = get_once(&url, &hs, tls)?;
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
    fn host_port(&self) -> String {
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

fn connect(url: &Url) -> Result<TcpStream, ImageError> {
    let err = |what: &str, e: io::Error| ImageError::Registry(format!("{what} {url}: {e}"));
    let addrs: Vec<_> = url
        .host_port()
        .to_socket_addrs()
        .map_err(|e| err("resolve", e))?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let s = stream.ok_or_else(|| err("connect to", last))?;
    // Also bound every read and write of the TLS layer above.
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| err("configure", e))?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| err("configure", e))?;
    Ok(s)
}

/// TLS over `tcp`, the handshake done: certificate problems surface here, named, rather than as
/// an I/O error of the request.
fn handshake(
    url: &Url,
    mut tcp: TcpStream,
    tls: &TlsConfig,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, ImageError> {
    let host = url.authority.clone();
    let fail = |reason: String| ImageError::Tls {
        host: host.clone(),
        reason,
    };
    // An IP address is verified against the certificate's IP SANs, and sent without SNI.
    let name = ServerName::try_from(url.host().to_string())
        .map_err(|e| fail(format!("`{}` is not a valid server name ({e})", url.host())))?;
    let mut conn = rustls::ClientConnection::new(tls.clone(), name)
        .map_err(|e| fail(tls::explain(url.host(), &url.authority, &e)))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let tls_error = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
            return Err(match tls_error {
                // The first bytes back are no TLS record: "HTTP/1.1 400 ...".
                Some(rustls::Error::InvalidMessage(
                    InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
                )) => ImageError::NotTls { host },
                Some(t) => fail(tls::explain(url.host(), &url.authority, t)),
                None => fail(format!("handshake failed: {e}")),
            });
        }
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

fn get_once(
    url: &Url,
    headers: &[(&str, String)],
    tls: &TlsConfig,
) -> Result<Response, ImageError> {
    let tcp = match url.scheme.as_str() {
        "http" | "https" => connect(url)?,
        other => {
            return Err(ImageError::Unsupported(format!(
                "URL scheme `{other}` (`{url}`)"
            )));
        }
    };
    if url.scheme == "https" {
        exchange(url, headers, handshake(url, tcp, tls)?)
    } else {
        exchange(url, headers, tcp)
    }
}

/// One request and the head of its response over a fresh connection, plain or TLS.
pub(crate) fn exchange<S: Read + Write + 'static>(
    url: &Url,
    headers: &[(&str, String)],
    mut s: S,
) -> Result<Response, ImageError> {
    let err = |what: &str, e: io::Error| ImageError::Registry(format!("{what} {url}: {e}"));
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: peapod/{}\r\nConnection: close\r\n",
        url.path,
        url.authority,
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        if v.contains(['\r', '\n']) {
            return Err(ImageError::Registry(format!("header {k} has a line break")));
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .and_then(|()| s.flush())
        .map_err(|e| err("send request to", e))?;
    let mut r = BufReader::with_capacity(64 << 10, s);
    let (status, headers) = read_head(&mut r).map_err(|e| err("read response from", e))?;
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let body: Box<dyn Read> =
        if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Box::new(Chunked {
                inner: r,
                left: 0,
                done: false,
            })
        } else if let Some(n) = find("content-length") {
            let n: u64 = n.trim().parse().map_err(|_| {
                ImageError::Registry(format!("GET {url}: bad Content-Length `{n}`"))
            })?;
            Box::new(Exact { inner: r, left: n })
        } else {
            Box::new(r)
        };
    Ok(Response {
        status,
        headers,
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

/// Status code and headers of a response.
pub(crate) fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut budget = MAX_HEADER_BYTES;
    let status_line = read_line(r, &mut budget)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line `{status_line}`"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        let l = read_line(r, &mut budget)?;
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
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
        let mut r = BufReader::new(&raw[..]);
        let (st, h) = read_head(&mut r).unwrap();
        assert_eq!((st, h.len()), (200, 1));
        let mut body = String::new();
        Chunked {
            inner: r,
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
        assert!(read_head(&mut BufReader::new(&b"SMTP 200\r\n\r\n"[..])).is_err());
        assert!(read_head(&mut BufReader::new(&b"HTTP/1.1 200 OK\r\nX: y"[..])).is_err());
    }
}
