//! Who `image pull` trusts over HTTPS: the system's CA certificates (as rustls-native-certs
//! finds them: `SSL_CERT_FILE`, else the distribution's bundle such as
//! `/etc/ssl/certs/ca-certificates.crt`) plus the `*.crt` files of one directory, chosen as
//! podman and containerd do:
//! - `--cert-dir DIR` when given (podman's flag), else
//! - the first of `/etc/containers/certs.d/<host[:port]>/` and `/etc/docker/certs.d/<host[:port]>/`
//!   that exists (the containers-certs.d(5) convention).
//!
//! Pulls always verify certificates; there is no option to skip that. (`--insecure` means plain
//! HTTP, which at least does not pretend to be secure.) Client certificates (`*.cert`/`*.key`)
//! are not supported and are ignored.
//!
//! The one configuration builder, [`config`], also serves the pod runtime's `httpGet` probes,
//! which skip verification as kubelet's do ([`Verify::Skip`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use super::ImageError;

/// Per-registry CA directories, in the order podman looks at them.
pub const CERTS_D: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// The TLS client configuration of a pull: built once, shared by every connection.
pub type TlsConfig = Arc<ClientConfig>;

/// The directory of extra CA files for `registry` (`host[:port]` as written in the image name):
/// `cert_dir` when given, else `<root>/<registry>` for the first of `certs_d` that has one.
pub fn ca_dir(registry: &str, cert_dir: Option<&Path>, certs_d: &[&str]) -> Option<PathBuf> {
    if let Some(d) = cert_dir {
        return Some(d.to_path_buf());
    }
    certs_d
        .iter()
        .map(|r| Path::new(r).join(registry))
        .find(|d| d.is_dir())
}

/// The `*.crt` files of `dir`, sorted (so errors and trust do not depend on readdir order).
pub fn ca_files(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let rd = std::fs::read_dir(dir).map_err(|e| ImageError::io("read CA directory", dir, e))?;
    let mut v = Vec::new();
    for e in rd {
        let p = e
            .map_err(|e| ImageError::io("read CA directory", dir, e))?
            .path();
        if p.extension().is_some_and(|x| x == "crt") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// The certificates of one PEM file; a file without any, or with a broken one, is an error
/// rather than silently trusting less than the user asked for.
pub fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, ImageError> {
    let bad =
        |reason: String| ImageError::TlsConfig(format!("CA file `{}`: {reason}", path.display()));
    let data = std::fs::read(path).map_err(|e| ImageError::io("read CA file", path, e))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    Ok(certs)
}

/// A client configuration trusting `system` roots plus the certificates in `ca_files` (see
/// [`config`]).
pub fn client_config(
    system: Vec<CertificateDer<'static>>,
    ca_files: &[PathBuf],
) -> Result<TlsConfig, ImageError> {
    let mut roots = RootCertStore::empty();
    // Like Go's x509.SystemCertPool: a system certificate webpki cannot use is skipped.
    roots.add_parsable_certificates(system);
    for f in ca_files {
        for c in read_pem(f)? {
            roots.add(c).map_err(|e| {
                ImageError::TlsConfig(format!(
                    "CA file `{}`: unusable certificate ({e})",
                    f.display()
                ))
            })?;
        }
    }
    config(Verify::Roots(roots))
}

/// Whom a connection trusts.
pub enum Verify {
    /// Certificates that chain to these roots and name the server (registry pulls).
    Roots(RootCertStore),
    /// Anyone: kubelet's probe transport (`InsecureSkipVerify`; a probe checks that the server
    /// answers, not who it is). Handshake signatures are still checked; the certificate chain
    /// and name are not.
    Skip,
}

/// The TLS client configuration: TLS 1.2 and 1.3 over the ring provider, HTTP/1.1 by ALPN, no
/// client certificate, certificates verified as `verify` says.
pub fn config(verify: Verify) -> Result<TlsConfig, ImageError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ImageError::TlsConfig(format!("protocol versions: {e}")))?;
    let mut cfg = match verify {
        Verify::Roots(roots) => builder.with_root_certificates(roots),
        Verify::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(algs))),
    }
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// [`Verify::Skip`]: every certificate is accepted; the handshake signatures are verified.
#[derive(Debug)]
struct SkipVerify(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The system's CA certificates. Unreadable ones are skipped (a machine without a bundle
/// trusts only the extra CA files; the handshake error then says the issuer is unknown).
pub fn system_roots() -> Vec<CertificateDer<'static>> {
    let r = rustls_native_certs::load_native_certs();
    for e in &r.errors {
        log::debug!("system CA certificates: {e}");
    }
    r.certs
}

/// The configuration for a pull from `registry`.
pub fn for_registry(registry: &str, cert_dir: Option<&Path>) -> Result<TlsConfig, ImageError> {
    let files = match ca_dir(registry, cert_dir, &CERTS_D) {
        Some(d) => ca_files(&d)?,
        None => Vec::new(),
    };
    client_config(system_roots(), &files)
}

/// A handshake failure in words, with the fix when there is one.
pub fn explain(host: &str, registry: &str, e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let add_ca = format!(
        "hint: add its CA with --cert-dir DIR or as {}/{registry}/ca.crt",
        CERTS_D[0]
    );
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!("certificate not trusted (unknown issuer); {add_ca}"),
            C::BadSignature | C::UnsupportedSignatureAlgorithmContext { .. } => format!(
                "certificate not trusted (its signature does not verify against a trusted CA); {add_ca}"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "certificate is not valid for `{host}`; hint: pull by a name the certificate lists"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                "certificate has expired; hint: renew it (or check this machine's clock)".into()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate is not valid yet; hint: check this machine's clock".into()
            }
            C::Revoked => "certificate is revoked".into(),
            other => format!("certificate rejected: {other:?}"),
        },
        other => format!("handshake failed: {}", lower_first(&other.to_string())),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A CA and HTTPS test servers on 127.0.0.1 with certificates it signed (made afresh by each
/// test: no key in the repository, nothing to expire). For other crates' tests (the probe
/// client's) with the `test-pki` feature.
#[cfg(any(test, feature = "test-pki"))]
pub mod test_pki {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    pub struct Pki {
        /// The CA certificate, PEM.
        pub ca_pem: String,
        /// A server configuration with a certificate for `names`, signed by the CA.
        pub server: Arc<rustls::ServerConfig>,
    }

    pub fn make(names: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "peapod-test-ca");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        // "127.0.0.1" becomes an IP SAN.
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }

    /// Serve HTTPS on 127.0.0.1: each request gets `respond(path)`, then close_notify. A
    /// handshake the client aborts is skipped.
    pub fn serve(server: Arc<rustls::ServerConfig>, respond: fn(&str) -> Vec<u8>) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for tcp in l.incoming().take(50) {
                let Ok(tcp) = tcp else { continue };
                let conn = rustls::ServerConnection::new(server.clone()).unwrap();
                let mut s = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                let mut line = String::new();
                if s.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                loop {
                    let mut h = String::new();
                    if s.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let s = s.get_mut();
                let _ = s.write_all(&respond(&path));
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        });
        port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_ca_files_are_added_and_bad_ones_refused() {
        let pki = test_pki::make(&["127.0.0.1"]);
        let ca = pki.ca_pem.as_str();
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("a.crt");
        std::fs::write(&good, ca).unwrap();
        client_config(Vec::new(), std::slice::from_ref(&good)).unwrap();
        assert_eq!(read_pem(&good).unwrap().len(), 1);

        let empty = d.path().join("b.crt");
        std::fs::write(&empty, "just text\n").unwrap();
        let e = client_config(Vec::new(), &[good.clone(), empty.clone()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "tls: CA file `{}`: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                empty.display()
            )
        );

        let broken = d.path().join("c.crt");
        let mut bytes = ca.replace("MII", "M!I").into_bytes();
        bytes.truncate(bytes.len() - 40);
        std::fs::write(&broken, bytes).unwrap();
        let e = client_config(Vec::new(), std::slice::from_ref(&broken)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("tls: CA file `{}`: ", broken.display())),
            "{e}"
        );

        // PEM that parses but is no certificate webpki can use.
        let junk = d.path().join("d.crt");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = client_config(Vec::new(), std::slice::from_ref(&junk)).unwrap_err();
        assert!(e.to_string().contains("unusable certificate"), "{e}");

        let e = ca_files(&d.path().join("nope")).unwrap_err();
        assert!(e.to_string().starts_with("read CA directory `"), "{e}");
    }

    #[test]
    fn the_ca_directory_is_cert_dir_else_the_first_certs_d_that_has_the_registry() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(b.join("reg:5000")).unwrap();
        std::fs::write(b.join("reg:5000/ca.crt"), "").unwrap();
        std::fs::write(b.join("reg:5000/client.cert"), "").unwrap();
        let roots = [a.to_str().unwrap(), b.to_str().unwrap()];
        assert_eq!(ca_dir("reg:5000", None, &roots), Some(b.join("reg:5000")));
        assert_eq!(ca_dir("reg", None, &roots), None);
        assert_eq!(
            ca_dir("reg:5000", Some(Path::new("/x")), &roots),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            ca_files(&b.join("reg:5000")).unwrap(),
            [b.join("reg:5000/ca.crt")]
        );
    }

    #[test]
    fn handshake_errors_name_the_cause_and_the_fix() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            explain("127.0.0.1", "127.0.0.1:5000", &e),
            "certificate not trusted (unknown issuer); hint: add its CA with --cert-dir DIR or as \
             /etc/containers/certs.d/127.0.0.1:5000/ca.crt"
        );
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert!(explain("a.b", "a.b", &e).contains("not valid for `a.b`"));
    }
}
