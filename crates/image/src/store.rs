//! The store's directory, its names, locks and garbage collection.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::Serialize;

use super::ImageError;
use super::digest::hex_of;
use super::reference::Reference;

const REFS_FILE: &str = "repositories.json";

/// An image ready to run.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// The normalized name it was found by (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The manifest digest (`sha256:...`).
    pub digest: String,
    /// The config digest, whose first 12 hex digits are the image ID (as podman and docker).
    pub id: String,
    /// The image config (Entrypoint, Cmd, Env, WorkingDir, User, StopSignal...).
    pub config: ImageConfiguration,
    /// Unpacked layer directories, bottom → top (reverse them for overlayfs' lowerdir).
    pub layer_dirs: Vec<PathBuf>,
    /// Bytes of file content in the layers.
    pub size: u64,
}

/// One row of `image ls`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    pub repository: String,
    pub tag: String,
    pub id: String,
    pub digest: String,
    pub size: u64,
    pub created: Option<String>,
}

/// What `prune` (and `rm`) removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub blobs: usize,
    pub layers: usize,
    pub temp_dirs: usize,
}

/// The image store under `<storage>/images`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

pub(crate) enum LockKind {
    /// Imports: many at once.
    Shared,
    /// `rm` and `prune`: alone.
    Exclusive,
}

impl Store {
    /// Open (creating it if needed) the store of `storage` (`--storage`, default
    /// `/var/lib/peapod`).
    pub fn open(storage: &Path) -> Result<Store, ImageError> {
        let root = storage.join("images");
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| ImageError::io("create store directory", &p, e))?;
        }
        Ok(Store { root })
    }

    /// `<storage>/images`
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest, "blob")?))
    }

    /// `layers/<hex>`: holds `diff/` (the unpacked layer) and `size`.
    pub(crate) fn layer_path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("layers").join(hex_of(diff_id, "layer")?))
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn lock(&self, kind: LockKind, file: &str) -> Result<Flock<File>, ImageError> {
        let p = self.root.join(file);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| ImageError::io("open lock file", &p, e))?;
        let arg = match kind {
            LockKind::Shared => FlockArg::LockShared,
            LockKind::Exclusive => FlockArg::LockExclusive,
        };
        Flock::lock(f, arg).map_err(|(_, e)| ImageError::io("lock", &p, io::Error::from(e)))
    }

    pub(crate) fn refs(&self) -> Result<BTreeMap<String, String>, ImageError> {
        let p = self.root.join(REFS_FILE);
        match fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| ImageError::json(p.display().to_string(), e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::io("read", &p, e)),
        }
    }

    /// Replace the names file atomically (tmp + fsync + rename). Callers hold a lock.
    pub(crate) fn write_refs(&self, refs: &BTreeMap<String, String>) -> Result<(), ImageError> {
        let p = self.root.join(REFS_FILE);
        let tmp = self
            .root
            .join(format!(".{REFS_FILE}.{}", std::process::id()));
        let data = serde_json::to_vec_pretty(refs).map_err(|e| ImageError::json("names", e))?;
        let mut f = File::create(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
        f.write_all(&data)
            .and_then(|()| f.sync_all())
            .map_err(|e| ImageError::io("write", &tmp, e))?;
        fs::rename(&tmp, &p).map_err(|e| ImageError::io("rename into place", &p, e))
    }

    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| ImageError::io("read blob", &p, e))
    }

    fn manifest_and_config(
        &self,
        digest: &str,
    ) -> Result<(ImageManifest, ImageConfiguration), ImageError> {
        let m = self.read_blob(digest)?;
        let m: ImageManifest = serde_json::from_slice(&m)
            .map_err(|e| ImageError::json(format!("manifest {digest}"), e))?;
        let c = self.read_blob(m.config().digest().as_ref())?;
        let c: ImageConfiguration = serde_json::from_slice(&c)
            .map_err(|e| ImageError::json(format!("config {}", m.config().digest()), e))?;
        Ok((m, c))
    }

    fn config_hex(&self, manifest_digest: &str) -> Result<String, ImageError> {
        let (m, _) = self.manifest_and_config(manifest_digest)?;
        hex_of(m.config().digest().as_ref(), "config")
    }

    fn load(&self, name: &str, digest: &str) -> Result<ImageInfo, ImageError> {
        let (m, config) = self.manifest_and_config(digest)?;
        let mut layer_dirs = Vec::new();
        let mut size = 0;
        for d in config.rootfs().diff_ids() {
            let l = self.layer_path(d)?;
            let diff = l.join("diff");
            if !diff.is_dir() {
                return Err(ImageError::Format {
                    path: diff,
                    reason: format!(
                        "layer {d} of image `{name}` is missing; hint: import the image again"
                    ),
                });
            }
            size += fs::read_to_string(l.join("size"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0);
            layer_dirs.push(diff);
        }
        Ok(ImageInfo {
            name: name.to_string(),
            digest: digest.to_string(),
            id: m.config().digest().to_string(),
            config,
            layer_dirs,
            size,
        })
    }

    /// Find an image by name (`busybox`, `busybox:1.36`, `name@sha256:...`, normalized like
    /// docker) or by image ID prefix (3+ hex digits of the config digest, as podman). `Ok(None)`
    /// when absent.
    pub fn resolve(&self, name: &str) -> Result<Option<ImageInfo>, ImageError> {
        let refs = self.refs()?;
        match self.find(&refs, name)? {
            Some((n, d, _)) => self.load(&n, &d).map(Some),
            None => Ok(None),
        }
    }

    /// (name, manifest digest, found by image ID) of `name` in `refs`.
    fn find(
        &self,
        refs: &BTreeMap<String, String>,
        name: &str,
    ) -> Result<Option<(String, String, bool)>, ImageError> {
        let is_id = name.len() >= 3
            && name.len() <= 64
            && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let parsed = Reference::parse(name);
        if let Ok(r) = &parsed {
            if let Some(d) = &r.digest {
                let repo = r.repo_name();
                let hit = refs.iter().find(|(n, md)| {
                    *md == d && Reference::parse(n).is_ok_and(|x| x.repo_name() == repo)
                });
                if let Some((_, md)) = hit {
                    return Ok(Some((r.to_string(), md.clone(), false)));
                }
            } else if let Some(t) = r.tagged()
                && let Some(md) = refs.get(&t)
            {
                return Ok(Some((t, md.clone(), false)));
            }
        }
        if is_id {
            // By image ID (config digest) prefix, as podman. Several names and manifests may
            // share one config (the same image from an OCI layout and a docker archive): that is
            // one image, and the first name stands for it.
            let mut hits: BTreeMap<String, (String, String, bool)> = BTreeMap::new();
            for (n, md) in refs {
                let id = self.config_hex(md)?;
                if id.starts_with(name) || hex_of(md, "manifest")?.starts_with(name) {
                    hits.entry(id)
                        .or_insert_with(|| (n.clone(), md.clone(), true));
                }
            }
            return match hits.len() {
                0 => Ok(None),
                1 => Ok(hits.into_values().next()),
                _ => Err(ImageError::Ambiguous(name.to_string())),
            };
        }
        parsed.map(|_| None)
    }

    /// Every name in the store, sorted.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let mut out = Vec::new();
        for (name, digest) in self.refs()? {
            // From manifest and config only: a damaged image (a layer directory gone) is still
            // listed, so it can be seen and removed; `resolve` is what refuses it.
            let (m, config) = self.manifest_and_config(&digest)?;
            let mut size = 0;
            for d in config.rootfs().diff_ids() {
                size += fs::read_to_string(self.layer_path(d)?.join("size"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
            let r = Reference::parse(&name)?;
            out.push(ImageSummary {
                repository: r.repo_name(),
                tag: r.tag.unwrap_or_else(|| "<none>".into()),
                id: hex_of(m.config().digest().as_ref(), "config")?,
                digest,
                size,
                created: config.created().clone(),
            });
        }
        Ok(out)
    }

    /// Remove a name (or, given an image ID, every name of that image), then the blobs and
    /// layers no name uses. Returns the names removed.
    pub fn remove(&self, name: &str) -> Result<Vec<String>, ImageError> {
        let _lock = self.lock(LockKind::Exclusive, "lock")?;
        let mut refs = self.refs()?;
        let Some((found, digest, by_id)) = self.find(&refs, name)? else {
            return Err(ImageError::NotFound(name.to_string()));
        };
        // Given an image ID, every name of that image (podman's `rmi ID`).
        let id = self.config_hex(&digest)?;
        let mut removed = Vec::new();
        for (n, d) in &refs {
            let hit = if by_id {
                self.config_hex(d)? == id
            } else {
                *n == found
            };
            if hit {
                removed.push(n.clone());
            }
        }
        for n in &removed {
            refs.remove(n);
        }
        self.write_refs(&refs)?;
        self.collect_garbage(&refs, false)?;
        Ok(removed)
    }

    /// Remove unreferenced blobs and layers and the remains of interrupted imports.
    pub fn prune(&self) -> Result<PruneReport, ImageError> {
        let _lock = self.lock(LockKind::Exclusive, "lock")?;
        let refs = self.refs()?;
        self.collect_garbage(&refs, true)
    }

    /// Callers hold the exclusive lock, so no import is running.
    fn collect_garbage(
        &self,
        refs: &BTreeMap<String, String>,
        temp: bool,
    ) -> Result<PruneReport, ImageError> {
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for digest in refs.values() {
            let (m, c) = self.manifest_and_config(digest)?;
            blobs.insert(hex_of(digest, "manifest")?);
            blobs.insert(hex_of(m.config().digest().as_ref(), "config")?);
            for d in c.rootfs().diff_ids() {
                layers.insert(hex_of(d, "layer")?);
            }
        }
        let mut report = PruneReport::default();
        let sweep =
            |dir: &Path, keep: &BTreeSet<String>, n: &mut usize| -> Result<(), ImageError> {
                let rd = fs::read_dir(dir).map_err(|e| ImageError::io("read directory", dir, e))?;
                for e in rd {
                    let e = e.map_err(|e| ImageError::io("read directory", dir, e))?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    if keep.contains(&name) {
                        continue;
                    }
                    let p = e.path();
                    let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                    r.map_err(|e| ImageError::io("remove", &p, e))?;
                    *n += 1;
                }
                Ok(())
            };
        sweep(&self.root.join("blobs/sha256"), &blobs, &mut report.blobs)?;
        sweep(&self.root.join("layers"), &layers, &mut report.layers)?;
        if temp {
            sweep(&self.tmp_dir(), &BTreeSet::new(), &mut report.temp_dirs)?;
        }
        Ok(report)
    }
}
