//! `image pull`: the OCI distribution API (`GET /v2/<name>/manifests/<ref>`, `/blobs/<digest>`)
//! with anonymous bearer-token auth. Blobs are downloaded into a staging OCI layout (layers the
//! store already has are skipped) and imported from there, so a pull verifies and publishes
//! exactly like an import.
//!
//! Which scheme: HTTPS, with the certificate verified (see [`super::tls`]), except
//! - `--insecure`: plain HTTP;
//! - a registry on this machine (`localhost`, 127.0.0.0/8, `::1`): HTTPS first, and plain HTTP
//!   when the server answers the TLS handshake in plain HTTP, as docker does for localhost. A
//!   local registry that does speak TLS is verified like any other: a certificate error never
//!   falls back, and the first answer settles the scheme for the whole pull.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde_json::json;

use super::ImageError;
use super::digest::{Hashing, hex_of, sha256, verify};
use super::http::{self, Response, Url};
use super::import::{ImportOptions, ImportProgress, ImportReport, host_arch, image_name};
use super::reference::Reference;
use super::store::{LockKind, Store};
use super::tls::{self, TlsConfig};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MAX_DOC: u64 = 16 << 20;

/// How to pull.
#[derive(Default)]
pub struct PullOptions<'a> {
    /// Use plain HTTP for this registry (no TLS at all).
    pub insecure: bool,
    /// Trust the `*.crt` CA files of this directory (podman's `--cert-dir`) instead of those of
    /// `/etc/containers/certs.d/<registry>/`.
    pub cert_dir: Option<PathBuf>,
    pub progress: Option<&'a dyn ImportProgress>,
}

/// Registries on this machine: HTTPS, or plain HTTP when they answer in it (docker's rule).
pub fn is_local(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    // An address, not a name that starts like one (`127.example.com`).
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host serving a registry name (`docker.io` is served by `registry-1.docker.io`).
fn endpoint(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// `Bearer realm="...",service="...",scope="..."` → ("bearer", params).
pub fn parse_challenge(h: &str) -> Option<(String, HashMap<String, String>)> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(k, v);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

fn query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

struct Client {
    scheme: &'static str,
    /// HTTPS may still turn out to be plain HTTP (a local registry, not yet answered).
    fallback: bool,
    authority: String,
    repo: String,
    token: Option<String>,
    tls: TlsConfig,
}

impl Client {
    fn url(&self, path: &str) -> Url {
        Url {
            scheme: self.scheme.to_string(),
            authority: self.authority.clone(),
            path: path.to_string(),
        }
    }

    /// GET with the token, fetching one on the first 401.
    fn get(&mut self, path: &str, accept: Option<&str>) -> Result<Response, ImageError> {
        for attempt in 0..2 {
            let mut hs: Vec<(&str, String)> = Vec::new();
            if let Some(a) = accept {
                hs.push(("Accept", a.to_string()));
            }
            if let Some(t) = &self.token {
                hs.push(("Authorization", format!("Bearer {t}")));
            }
            let r = match http::get(&self.url(path), &hs, &self.tls) {
                Err(ImageError::NotTls { host }) if self.fallback && host == self.authority => {
                    log::debug!("{host} answered in plain HTTP: using HTTP for it");
                    self.scheme = "http";
                    self.fallback = false;
                    http::get(&self.url(path), &hs, &self.tls)?
                }
                r => r?,
            };
            // One answer settles the scheme: no downgrade later in the pull.
            self.fallback = false;
            if r.status == 401 && attempt == 0 && self.token.is_none() {
                let ch = r.header("www-authenticate").unwrap_or_default().to_string();
                self.token = Some(self.fetch_token(&ch)?);
                continue;
            }
            return expect_ok(r);
        }
        Err(ImageError::Registry(format!(
            "GET {}: still unauthorized with a token; the repository may be private (peapod pulls anonymously)",
            self.url(path)
        )))
    }

    fn fetch_token(&self, challenge: &str) -> Result<String, ImageError> {
        let Some((scheme, p)) = parse_challenge(challenge) else {
            return Err(ImageError::Registry(format!(
                "unauthorized, with an unreadable challenge `{challenge}`"
            )));
        };
        if scheme != "bearer" {
            return Err(ImageError::Registry(format!(
                "{} asks for {scheme} credentials; peapod pulls anonymously only",
                self.authority
            )));
        }
        let realm = p
            .get("realm")
            .ok_or_else(|| ImageError::Registry("bearer challenge without realm".into()))?;
        let mut url = Url::parse(realm)?;
        let scope = p
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.repo));
        let mut q = format!("scope={}", query_escape(&scope));
        if let Some(s) = p.get("service") {
            q = format!("service={}&{q}", query_escape(s));
        }
        url.path
            .push(if url.path.contains('?') { '&' } else { '?' });
        url.path.push_str(&q);
        let r = expect_ok(http::get(&url, &[], &self.tls)?)?;
        let body = r.bytes(1 << 20)?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ImageError::json("token response", e))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| ImageError::Registry(format!("token response of {url} has no token")))
    }

    /// A manifest or index: (bytes, media type).
    fn manifest(&mut self, reference: &str) -> Result<(Vec<u8>, String), ImageError> {
        let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
        let r = self.get(
            &format!("/v2/{}/manifests/{reference}", self.repo),
            Some(&accept),
        )?;
        let ct = r.header("content-type").unwrap_or_default().to_string();
        let data = r.bytes(MAX_DOC)?;
        let mt = serde_json::from_slice::<serde_json::Value>(&data)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            .unwrap_or(ct);
        Ok((data, mt))
    }

    fn blob(&mut self, digest: &str) -> Result<Response, ImageError> {
        self.get(&format!("/v2/{}/blobs/{digest}", self.repo), None)
    }
}

fn expect_ok(r: Response) -> Result<Response, ImageError> {
    if r.status == 200 {
        return Ok(r);
    }
    let (status, url) = (r.status, r.url.clone());
    let body = r.bytes(4096).unwrap_or_default();
    // The distribution API explains itself in {"errors":[{"code","message"}]}.
    let why = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?;
            Some(format!(
                "{} {}",
                e.get("code")?.as_str()?,
                e.get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
            ))
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect()
        });
    Err(ImageError::Registry(format!(
        "GET {url}: HTTP {status} {why}"
    )))
}

impl Store {
    /// Pull `name` from its registry and import it. Layers already in the store are not
    /// downloaded.
    pub fn pull(&self, name: &str, opts: &PullOptions<'_>) -> Result<ImportReport, ImageError> {
        let r = Reference::parse(name)?;
        // By digest only: stored as `repo@sha256:...`, which `resolve` finds by that digest.
        let store_name = match r.tagged() {
            Some(t) => image_name(&t)?,
            None => r.to_string(),
        };
        let mut c = Client {
            scheme: if opts.insecure { "http" } else { "https" },
            fallback: !opts.insecure && is_local(&r.registry),
            authority: endpoint(&r.registry).to_string(),
            repo: r.repository.clone(),
            token: None,
            tls: tls::for_registry(&r.registry, opts.cert_dir.as_deref())?,
        };
        let reference = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| "latest".into());
        if let Some(p) = opts.progress {
            p.step(&format!("manifest {reference}"));
        }
        let (mut mdata, mut mt) = c.manifest(&reference)?;
        if let Some(d) = &r.digest {
            verify(&format!("manifest {d}"), &mdata, d, None)?;
        }
        if mt == OCI_INDEX || mt == DOCKER_LIST {
            let index: ImageIndex = serde_json::from_slice(&mdata)
                .map_err(|e| ImageError::json(format!("index of `{name}`"), e))?;
            let pick = index.manifests().iter().find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
                })
            });
            let Some(d) = pick else {
                let have: Vec<String> = index
                    .manifests()
                    .iter()
                    .filter_map(|d| d.platform().as_ref())
                    .map(|p| format!("{}/{}", p.os(), p.architecture()))
                    .collect();
                return Err(ImageError::Unsupported(format!(
                    "image index of `{name}`: no linux/{} manifest (it has: {})",
                    host_arch(),
                    have.join(", ")
                )));
            };
            let digest = d.digest().to_string();
            (mdata, mt) = c.manifest(&digest)?;
            verify(
                &format!("manifest {digest}"),
                &mdata,
                &digest,
                Some(d.size()),
            )?;
        }
        if mt != OCI_MANIFEST && mt != DOCKER_MANIFEST {
            return Err(ImageError::Unsupported(format!(
                "manifest media type `{mt}` of `{name}`"
            )));
        }
        let manifest: ImageManifest = serde_json::from_slice(&mdata)
            .map_err(|e| ImageError::json(format!("manifest of `{name}`"), e))?;
        let mdigest = sha256(&mdata);

        // Shared with imports; `rm` and `prune` (which would clear tmp/) wait.
        let _lock = self.lock(LockKind::Shared, "lock")?;
        let dir = tempfile::Builder::new()
            .prefix("pull-")
            .tempdir_in(self.tmp_dir())
            .map_err(|e| ImageError::io("create staging directory in", &self.tmp_dir(), e))?;
        let blobs = dir.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| ImageError::io("create", &blobs, e))?;
        let put = |digest: &str, data: &[u8]| -> Result<(), ImageError> {
            let p = blobs.join(hex_of(digest, "blob")?);
            fs::write(&p, data).map_err(|e| ImageError::io("write", &p, e))
        };
        put(&mdigest, &mdata)?;
        let cdesc = manifest.config();
        let cdigest = cdesc.digest().to_string();
        let cdata = c.blob(&cdigest)?.bytes(MAX_DOC)?;
        verify(
            &format!("config {cdigest}"),
            &cdata,
            &cdigest,
            Some(cdesc.size()),
        )?;
        put(&cdigest, &cdata)?;
        let config: ImageConfiguration = serde_json::from_slice(&cdata)
            .map_err(|e| ImageError::json(format!("config {cdigest}"), e))?;
        let diff_ids = config.rootfs().diff_ids();
        if let Some(p) = opts.progress {
            p.total(manifest.layers().iter().map(Descriptor::size).sum());
        }
        for (i, l) in manifest.layers().iter().enumerate() {
            let have = diff_ids
                .get(i)
                .map(|d| self.layer_path(d).map(|p| p.join("diff").is_dir()))
                .transpose()?
                .unwrap_or(false);
            if have {
                if let Some(p) = opts.progress {
                    p.advance(l.size());
                }
                continue;
            }
            let digest = l.digest().to_string();
            if let Some(p) = opts.progress {
                p.step(&format!("pull {}", &hex_of(&digest, "layer")?[..12]));
            }
            download(&mut c, &digest, l.size(), &blobs, opts.progress)?;
        }
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": mt, "digest": mdigest, "size": mdata.len(),
                "annotations": {"io.containerd.image.name": store_name},
            }],
        });
        let ip = dir.path().join("index.json");
        fs::write(&ip, index.to_string()).map_err(|e| ImageError::io("write", &ip, e))?;
        let lp = dir.path().join("oci-layout");
        fs::write(&lp, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(|e| ImageError::io("write", &lp, e))?;
        self.import(
            dir.path(),
            &ImportOptions {
                name: None,
                progress: None,
            },
        )
    }
}

/// Stream a blob to `blobs/<hex>`, checking digest and size as it arrives.
fn download(
    c: &mut Client,
    digest: &str,
    size: u64,
    blobs: &std::path::Path,
    progress: Option<&dyn ImportProgress>,
) -> Result<(), ImageError> {
    let p = blobs.join(hex_of(digest, "layer")?);
    let r = c.blob(digest)?;
    let url = r.url.clone();
    let advance = |n: u64| {
        if let Some(p) = progress {
            p.advance(n);
        }
    };
    // One byte over the descriptor's size is enough to know it lies.
    let (mut body, state) = Hashing::new(r.body.take(size + 1), Some(&advance));
    let mut f = File::create(&p).map_err(|e| ImageError::io("create", &p, e))?;
    io::copy(&mut body, &mut f)
        .map_err(|e| ImageError::Registry(format!("download {url}: {e}")))?;
    let (got, n) = state.finish();
    if n != size {
        return Err(ImageError::SizeMismatch {
            what: format!("layer {digest} from {url}"),
            expected: size,
            actual: n,
        });
    }
    if got != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("layer from {url}"),
            expected: digest.to_string(),
            actual: got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_local_registries() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "http://127.0.0.1:1/token");
        assert_eq!(p["service"], "reg");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert_eq!(parse_challenge(r#"Basic realm="x""#).unwrap().0, "basic");
        for l in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_local(l), "{l}");
        }
        for r in [
            "docker.io",
            "quay.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "127.example.com:5000",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_local(r), "{r}");
        }
        assert_eq!(
            query_escape("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }

    #[test]
    fn https_to_local_registries_plain_http_answers_and_bad_ca_files() {
        // A server that answers anything with HTTP 400, as a plain-HTTP server answers a
        // ClientHello.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::Write;
            for c in l.incoming().take(2) {
                let _ = c.unwrap().write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let tls = tls::client_config(Vec::new(), &[]).unwrap();
        let url = Url::parse(&format!("https://127.0.0.1:{port}/v2/")).unwrap();
        let e = http::get(&url, &[], &tls).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "tls connection to 127.0.0.1:{port}: the server answered in plain HTTP, not TLS; \
                 hint: pass --insecure for a plain-HTTP registry"
            )
        );

        let storage = tempfile::tempdir().unwrap();
        let store = Store::open(storage.path()).unwrap();
        // A local registry that speaks TLS: a certificate error does not fall back to HTTP;
        // with its CA, the registry's own answer.
        let pki = tls::test_pki::make(&["127.0.0.1"]);
        let port = tls::test_pki::serve(pki.server, |_| {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 62\r\n\r\n{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"not known\"}]}".to_vec()
        });
        let name = format!("127.0.0.1:{port}/a/b:1");
        let e = store.pull(&name, &PullOptions::default()).unwrap_err();
        assert!(
            matches!(&e, ImageError::Tls { reason, .. } if reason.starts_with("certificate not trusted")),
            "{e}"
        );
        let ca = tempfile::tempdir().unwrap();
        fs::write(ca.path().join("ca.crt"), &pki.ca_pem).unwrap();
        let opts = PullOptions {
            cert_dir: Some(ca.path().to_path_buf()),
            ..Default::default()
        };
        let e = store.pull(&name, &opts).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "GET https://127.0.0.1:{port}/v2/a/b/manifests/1: HTTP 404 MANIFEST_UNKNOWN"
            )),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let opts = PullOptions {
            cert_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let e = store.pull("quay.io/a/b:1", &opts).unwrap_err();
        assert!(
            e.to_string().starts_with("tls: CA file `") && e.to_string().contains("ca.crt"),
            "{e}"
        );
    }
}
