//! `image import`: OCI image layouts (directory or tar) and docker archives (`docker save`).
//!
//! Everything is written to a staging directory under `tmp/` first: blobs verified against their
//! digests, layers unpacked and checked against the config's diff_ids. Only then, under
//! `refs.lock`, are blobs and layers renamed into place and the names updated, so a failure at
//! any point leaves the store as it was.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType,
};
use serde::Deserialize;

use super::ImageError;
use super::digest::{Hashing, hex_of, sha256, verify};
use super::reference::Reference;
use super::store::{LockKind, Store};
use super::unpack::unpack_layer;
use crate::pod::sandbox::HOST_IMAGE;

/// Progress of an import (the CLI draws a bar on a terminal).
pub trait ImportProgress {
    /// Layer bytes to read in all.
    fn total(&self, _bytes: u64) {}
    /// Layer bytes read so far grew by `bytes`.
    fn advance(&self, _bytes: u64) {}
    /// A step began (`unpack sha256:...`).
    fn step(&self, _msg: &str) {}
}

/// How to import.
#[derive(Default)]
pub struct ImportOptions<'a> {
    /// `NAME[:TAG]` for the image, instead of the names the archive carries.
    pub name: Option<String>,
    pub progress: Option<&'a dyn ImportProgress>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// (name, manifest digest) of each image imported.
    pub images: Vec<(String, String)>,
    /// Layers unpacked by this import.
    pub layers_unpacked: usize,
    /// Layers already in the store.
    pub layers_reused: usize,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression a layer media type announces; None for media types that are not layers.
    fn of_media_type(mt: &MediaType) -> Result<Compression, ImageError> {
        Ok(match mt {
            MediaType::ImageLayer => Compression::None,
            MediaType::ImageLayerGzip => Compression::Gzip,
            MediaType::ImageLayerZstd => Compression::Zstd,
            MediaType::ImageLayerNonDistributable => Compression::None,
            MediaType::ImageLayerNonDistributableGzip => Compression::Gzip,
            MediaType::ImageLayerNonDistributableZstd => Compression::Zstd,
            MediaType::Other(s) if s == "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                Compression::Gzip
            }
            MediaType::Other(s)
                if s == "application/vnd.docker.image.rootfs.diff.tar"
                    || s == "application/vnd.docker.image.rootfs.diff.tar.zstd" =>
            {
                if s.ends_with("zstd") {
                    Compression::Zstd
                } else {
                    Compression::None
                }
            }
            other => {
                return Err(ImageError::Unsupported(format!(
                    "layer media type `{other}` (peapod reads tar, tar+gzip and tar+zstd layers)"
                )));
            }
        })
    }

    fn oci_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

/// Where the archive's files are read from.
enum Source {
    Dir(PathBuf),
    /// A tar file, indexed once: name → (data offset, size), symlink name → target.
    Tar {
        path: PathBuf,
        file: Arc<File>,
        files: HashMap<String, (u64, u64)>,
        links: HashMap<String, String>,
        /// The decompressed copy of a compressed archive, removed on drop.
        _decompressed: Option<tempfile::TempPath>,
    },
}

/// `a/./b/` → `a/b`; None for names with `..` or absolute ones.
fn clean(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

struct RangeReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

impl Source {
    /// Open a layout directory or an archive; a gzip or zstd compressed archive
    /// (`docker save | gzip`) is decompressed into a temp file in `tmp` first, to be read at
    /// random.
    fn open(path: &Path, tmp: &Path) -> Result<Source, ImageError> {
        let meta = fs::metadata(path).map_err(|e| ImageError::io("open archive", path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let file = File::open(path).map_err(|e| ImageError::io("open archive", path, e))?;
        let mut head = [0u8; 4];
        let n = file
            .read_at(&mut head, 0)
            .map_err(|e| ImageError::io("read archive", path, e))?;
        let (file, decompressed) = match Compression::sniff(&head[..n]) {
            Compression::None => (file, None),
            comp => {
                let err = |e| ImageError::io("decompress archive", path, e);
                let mut t = tempfile::Builder::new()
                    .prefix("archive-")
                    .tempfile_in(tmp)
                    .map_err(|e| ImageError::io("create temp file in", tmp, e))?;
                let input = BufReader::with_capacity(256 << 10, file);
                let mut dec: Box<dyn Read> = match comp {
                    Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
                    _ => Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(err)?),
                };
                io::copy(&mut dec, t.as_file_mut()).map_err(err)?;
                let (mut f, p) = t.into_parts();
                // Indexing reads from the file position.
                f.seek(io::SeekFrom::Start(0)).map_err(err)?;
                (f, Some(p))
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| ImageError::io("read archive", path, e))?;
        let size = meta.len();
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut ar = tar::Archive::new(&file);
        let bad = |e: io::Error| ImageError::Format {
            path: path.to_path_buf(),
            reason: format!("not a readable tar archive: {e}"),
        };
        for entry in ar.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let Some(name) = entry.path().ok().and_then(|p| p.to_str().and_then(clean)) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let off = entry.raw_file_position();
                let len = entry.size();
                if off.checked_add(len).is_none_or(|end| end > size) {
                    return Err(ImageError::Format {
                        path: path.to_path_buf(),
                        reason: format!(
                            "`{name}` runs past the end of the file: the archive is truncated"
                        ),
                    });
                }
                files.insert(name, (off, len));
            } else if (kind.is_symlink() || kind.is_hard_link())
                && let Ok(Some(t)) = entry.link_name()
            {
                let t = t.to_string_lossy().into_owned();
                let target = if kind.is_symlink() {
                    let parent = Path::new(&name).parent().unwrap_or(Path::new(""));
                    parent.join(&t).to_string_lossy().into_owned()
                } else {
                    t
                };
                links.insert(name, target);
            }
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            file: Arc::new(file),
            files,
            links,
            _decompressed: decompressed,
        })
    }

    fn path(&self) -> &Path {
        match self {
            Source::Dir(p) => p,
            Source::Tar { path, .. } => path,
        }
    }

    fn missing(&self, name: &str) -> ImageError {
        ImageError::Format {
            path: self.path().to_path_buf(),
            reason: format!("`{name}` is missing from the archive"),
        }
    }

    /// Resolve symlinks inside the archive (docker 25+ links `<id>/layer.tar` to a blob).
    fn lookup(&self, name: &str) -> Option<(u64, u64)> {
        let Source::Tar { files, links, .. } = self else {
            return None;
        };
        let mut n = clean(name)?;
        for _ in 0..16 {
            if let Some(r) = files.get(&n) {
                return Some(*r);
            }
            n = resolve_dots(links.get(&n)?)?;
        }
        None
    }

    fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => clean(name).is_some_and(|n| d.join(n).is_file()),
            Source::Tar { .. } => self.lookup(name).is_some(),
        }
    }

    fn size(&self, name: &str) -> u64 {
        match self {
            Source::Dir(d) => clean(name)
                .and_then(|n| fs::metadata(d.join(n)).ok())
                .map_or(0, |m| m.len()),
            Source::Tar { .. } => self.lookup(name).map_or(0, |(_, l)| l),
        }
    }

    fn reader(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        match self {
            Source::Dir(d) => {
                let n = clean(name).ok_or_else(|| self.missing(name))?;
                let p = d.join(n);
                match File::open(&p) {
                    Ok(f) => Ok(Box::new(f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.missing(name)),
                    Err(e) => Err(ImageError::io("open", &p, e)),
                }
            }
            Source::Tar { file, .. } => {
                let (off, len) = self.lookup(name).ok_or_else(|| self.missing(name))?;
                Ok(Box::new(RangeReader {
                    file: file.clone(),
                    pos: off,
                    end: off + len,
                }))
            }
        }
    }

    /// A small file (index, manifest, config), at most 16 MiB.
    fn read_small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        const LIMIT: u64 = 16 << 20;
        let mut v = Vec::new();
        self.reader(name)?
            .take(LIMIT + 1)
            .read_to_end(&mut v)
            .map_err(|e| ImageError::io("read", &self.path().join(name), e))?;
        if v.len() as u64 > LIMIT {
            return Err(ImageError::Unsupported(format!(
                "{name} in {} is larger than {LIMIT} bytes, the limit for an image's JSON documents",
                self.path().display()
            )));
        }
        Ok(v)
    }
}

/// `a/b/../c` → `a/c` (symlink targets inside an archive); None when it climbs out.
fn resolve_dots(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            x => parts.push(x),
        }
    }
    Some(parts.join("/"))
}

fn blob_name(digest: &str, what: &str) -> Result<String, ImageError> {
    Ok(format!("blobs/sha256/{}", hex_of(digest, what)?))
}

/// The platform this machine runs, in OCI's words.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// An import in progress: its staging directory and what is ready to publish.
struct Staging<'s> {
    store: &'s Store,
    dir: tempfile::TempDir,
    blobs: Vec<(String, PathBuf)>,
    layers: Vec<(String, PathBuf)>,
    names: Vec<(String, String)>,
    report: ImportReport,
}

impl<'s> Staging<'s> {
    fn new(store: &'s Store) -> Result<Staging<'s>, ImageError> {
        let dir = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(store.tmp_dir())
            .map_err(|e| ImageError::io("create staging directory in", &store.tmp_dir(), e))?;
        Ok(Staging {
            store,
            dir,
            blobs: Vec::new(),
            layers: Vec::new(),
            names: Vec::new(),
            report: ImportReport::default(),
        })
    }

    fn add_blob(&mut self, digest: &str, data: &[u8]) -> Result<(), ImageError> {
        let hex = hex_of(digest, "blob")?;
        if self.blobs.iter().any(|(h, _)| *h == hex) {
            return Ok(());
        }
        let p = self.dir.path().join(format!("blob-{hex}"));
        fs::write(&p, data).map_err(|e| ImageError::io("write blob", &p, e))?;
        self.blobs.push((hex, p));
        Ok(())
    }

    /// Unpack a layer unless the store or this import already has it. `expect`: the
    /// descriptor's digest and size, when the archive has one; `declared`: the compression its
    /// media type announces.
    fn add_layer(
        &mut self,
        src: &Source,
        file: &str,
        diff_id: &str,
        declared: Option<Compression>,
        expect: Option<(&str, u64)>,
        progress: Option<&dyn ImportProgress>,
    ) -> Result<(Compression, String, u64), ImageError> {
        let hex = hex_of(diff_id, "layer")?;
        let have = self.store.layer_path(diff_id)?.join("diff").is_dir();
        let staged = self.layers.iter().any(|(h, _)| *h == hex);
        if (have || staged)
            && let Some((d, s)) = expect
        {
            // The content is known by its diff_id, which the verified config names; the blob is
            // still checked when present, so a corrupt archive is refused even when nothing new
            // is in it. A pull leaves out the blobs of layers the store has.
            if !src.exists(file) {
                self.report.layers_reused += 1;
                return Ok((declared.unwrap_or(Compression::None), d.to_string(), s));
            }
            let (comp, digest, size) = hash_blob(src, file, progress)?;
            check_blob(file, (d, s), (&digest, size))?;
            self.report.layers_reused += 1;
            return Ok((comp, digest, size));
        }
        if let Some(p) = progress {
            p.step(&format!("unpack {}", &hex[..12]));
        }
        let layer = self.dir.path().join(format!("layer-{hex}"));
        let diff = layer.join("diff");
        fs::create_dir_all(&diff).map_err(|e| ImageError::io("create", &diff, e))?;
        let advance = |n: u64| {
            if let Some(p) = progress {
                p.advance(n);
            }
        };
        let (raw, raw_digest) = Hashing::new(src.reader(file)?, Some(&advance));
        let mut raw = BufReader::with_capacity(256 << 10, raw);
        let head = raw
            .fill_buf()
            .map_err(|e| ImageError::io("read layer", &src.path().join(file), e))?;
        let sniffed = Compression::sniff(head);
        if let Some(d) = declared
            && d != sniffed
        {
            return Err(ImageError::Format {
                path: src.path().to_path_buf(),
                reason: format!("layer `{file}` is declared {d:?} but its content is {sniffed:?}"),
            });
        }
        let (tar_digest, unpacked) = {
            let r: &mut dyn BufRead = &mut raw;
            let read_err =
                |e: io::Error| ImageError::io("decompress layer", &src.path().join(file), e);
            let mut dec: Box<dyn Read + '_> = match sniffed {
                Compression::None => Box::new(r),
                Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
                Compression::Zstd => {
                    Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(read_err)?)
                }
            };
            let (mut tar, tar_digest) = Hashing::new(&mut dec, None);
            let unpacked = unpack_layer(&mut tar, &diff)?;
            // The tar's end-of-archive blocks and padding are part of the diff_id.
            io::copy(&mut tar, &mut io::sink()).map_err(read_err)?;
            (tar_digest, unpacked)
        };
        io::copy(&mut raw, &mut io::sink())
            .map_err(|e| ImageError::io("read layer", &src.path().join(file), e))?;
        let (raw_d, raw_n) = raw_digest.finish();
        if let Some(e) = expect {
            check_blob(file, e, (&raw_d, raw_n))?;
        }
        let (tar_d, _) = tar_digest.finish();
        if tar_d != diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("uncompressed layer `{file}` (diff_id in the config)"),
                expected: diff_id.to_string(),
                actual: tar_d,
            });
        }
        let sz = layer.join("size");
        fs::write(&sz, unpacked.bytes.to_string()).map_err(|e| ImageError::io("write", &sz, e))?;
        self.layers.push((hex, layer));
        self.report.layers_unpacked += 1;
        Ok((sniffed, raw_d, raw_n))
    }

    /// Rename everything into place and record the names.
    fn publish(mut self) -> Result<ImportReport, ImageError> {
        let _lock = self.store.lock(LockKind::Exclusive, "refs.lock")?;
        for (hex, p) in &self.blobs {
            let dst = self.store.root().join("blobs/sha256").join(hex);
            fs::rename(p, &dst).map_err(|e| ImageError::io("rename blob into", &dst, e))?;
        }
        for (hex, p) in &self.layers {
            let dst = self.store.root().join("layers").join(hex);
            if dst.join("diff").is_dir() {
                continue; // a concurrent import of the same layer won; ours goes with the staging dir
            }
            if dst.exists() {
                fs::remove_dir_all(&dst)
                    .map_err(|e| ImageError::io("remove incomplete layer", &dst, e))?;
            }
            fs::rename(p, &dst).map_err(|e| ImageError::io("rename layer into", &dst, e))?;
        }
        let mut refs = self.store.refs()?;
        for (n, d) in &self.names {
            refs.insert(n.clone(), d.clone());
        }
        self.store.write_refs(&refs)?;
        self.report.images = std::mem::take(&mut self.names);
        Ok(self.report)
    }
}

/// A name given by the user or the archive, normalized (`repo:tag`, or `repo@sha256:...` for an
/// image pulled by digest); `host` is reserved.
pub(crate) fn image_name(name: &str) -> Result<String, ImageError> {
    let r = Reference::parse(name)?;
    let key = r.tagged().unwrap_or_else(|| r.to_string());
    if name == HOST_IMAGE || key == format!("docker.io/library/{HOST_IMAGE}:latest") {
        return Err(ImageError::Reserved(name.to_string()));
    }
    Ok(key)
}

fn check_platform(config: &ImageConfiguration, what: &str) -> Result<(), ImageError> {
    let os = config.os().to_string();
    let arch = config.architecture().to_string();
    if os != "linux" || arch != host_arch() {
        return Err(ImageError::Unsupported(format!(
            "platform {os}/{arch} of {what}: this machine runs linux/{}",
            host_arch()
        )));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| ImageError::json(what, e))
}

const NAME_ANNOTATIONS: [&str; 2] = [
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

impl Store {
    /// Import an OCI image layout (directory or tar) or a docker archive.
    pub fn import(
        &self,
        path: &Path,
        opts: &ImportOptions<'_>,
    ) -> Result<ImportReport, ImageError> {
        if let Some(n) = &opts.name {
            if n.contains('@') {
                return Err(ImageError::InvalidReference {
                    name: n.clone(),
                    reason: "--name takes NAME[:TAG]: the digest is the manifest's own".into(),
                });
            }
            image_name(n)?;
        }
        // Shared: imports run side by side; `rm` and `prune` (which clears tmp/) wait for them.
        let _lock = self.lock(LockKind::Shared, "lock")?;
        let src = Source::open(path, &self.tmp_dir())?;
        let mut st = Staging::new(self)?;
        if src.exists("index.json") {
            import_oci(&src, &mut st, opts)?;
        } else if src.exists("manifest.json") {
            import_docker(&src, &mut st, opts)?;
        } else {
            return Err(ImageError::Format {
                path: path.to_path_buf(),
                reason:
                    "neither an OCI image layout (index.json) nor a docker archive (manifest.json)"
                        .into(),
            });
        }
        st.publish()
    }
}

/// Image manifests of an OCI index, nested indexes resolved to this platform.
fn manifests_of(
    src: &Source,
    index: &ImageIndex,
    what: &str,
    depth: u32,
) -> Result<Vec<(Option<String>, Descriptor)>, ImageError> {
    let mut out = Vec::new();
    for d in index.manifests() {
        let name = d
            .annotations()
            .as_ref()
            .and_then(|a| NAME_ANNOTATIONS.iter().find_map(|k| a.get(*k).cloned()));
        match d.media_type() {
            MediaType::ImageIndex if depth < 4 => {
                let data = src.read_small(&blob_name(d.digest().as_ref(), "index")?)?;
                verify(
                    &format!("index {}", d.digest()),
                    &data,
                    d.digest().as_ref(),
                    Some(d.size()),
                )?;
                let nested: ImageIndex = parse(&format!("index {}", d.digest()), &data)?;
                let want = |x: &Descriptor| {
                    x.platform().as_ref().is_some_and(|p| {
                        p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
                    })
                };
                let Some(m) = nested.manifests().iter().find(|x| want(x)) else {
                    let have: Vec<String> = nested
                        .manifests()
                        .iter()
                        .filter_map(|x| x.platform().as_ref())
                        .map(|p| format!("{}/{}", p.os(), p.architecture()))
                        .collect();
                    return Err(ImageError::Unsupported(format!(
                        "image index {} in {what}: no linux/{} manifest (it has: {})",
                        d.digest(),
                        host_arch(),
                        have.join(", ")
                    )));
                };
                let mut m = m.clone();
                if m.media_type() == &MediaType::ImageIndex {
                    return Err(ImageError::Unsupported(format!(
                        "nested image index {}",
                        m.digest()
                    )));
                }
                m.set_annotations(None);
                out.push((name, m));
            }
            MediaType::ImageManifest => out.push((name, d.clone())),
            MediaType::Other(s) if s == "application/vnd.docker.distribution.manifest.v2+json" => {
                out.push((name, d.clone()))
            }
            other => {
                return Err(ImageError::Unsupported(format!(
                    "manifest media type `{other}` in {what}"
                )));
            }
        }
    }
    Ok(out)
}

fn import_oci(
    src: &Source,
    st: &mut Staging<'_>,
    opts: &ImportOptions<'_>,
) -> Result<(), ImageError> {
    let what = src.path().display().to_string();
    let index: ImageIndex = parse(
        &format!("index.json of {what}"),
        &src.read_small("index.json")?,
    )?;
    let mut found = manifests_of(src, &index, &what, 0)?;
    if found.is_empty() {
        return Err(ImageError::Format {
            path: src.path().to_path_buf(),
            reason: "index.json lists no manifest".into(),
        });
    }
    if let Some(n) = &opts.name {
        if found.len() > 1 {
            let tag = Reference::parse(n)?.tag.unwrap_or_default();
            found.retain(|(an, _)| an.as_deref().is_some_and(|a| a == tag || a == n.as_str()));
            if found.len() != 1 {
                return Err(ImageError::Format {
                    path: src.path().to_path_buf(),
                    reason: format!(
                        "the layout holds several images and none is uniquely named `{n}`"
                    ),
                });
            }
        }
        found[0].0 = Some(n.clone());
    }
    let total: u64 = {
        let mut t = 0;
        for (_, d) in &found {
            if let Ok(m) = src.read_small(&blob_name(d.digest().as_ref(), "manifest")?)
                && let Ok(m) = serde_json::from_slice::<ImageManifest>(&m)
            {
                t += m.layers().iter().map(Descriptor::size).sum::<u64>();
            }
        }
        t
    };
    if let Some(p) = opts.progress {
        p.total(total);
    }
    for (name, desc) in found {
        // `org.opencontainers.image.ref.name` is often only a tag (skopeo's `oci:DIR:v1`): a
        // name needs a repository.
        let name = match (&opts.name, name) {
            (Some(n), _) => n.clone(),
            (None, Some(n)) if n.contains('/') || n.contains(':') => n,
            (None, Some(tag)) => {
                return Err(ImageError::Format {
                    path: src.path().to_path_buf(),
                    reason: format!(
                        "manifest {} is named only `{tag}`, a tag without a repository; hint: pass --name NAME:{tag}",
                        desc.digest()
                    ),
                });
            }
            (None, None) => {
                return Err(ImageError::Format {
                    path: src.path().to_path_buf(),
                    reason: format!(
                        "manifest {} has no name annotation; hint: pass --name NAME[:TAG]",
                        desc.digest()
                    ),
                });
            }
        };
        let name = image_name(&name)?;
        let mdigest = desc.digest().to_string();
        let mdata = src.read_small(&blob_name(&mdigest, "manifest")?)?;
        verify(
            &format!("manifest {mdigest}"),
            &mdata,
            &mdigest,
            Some(desc.size()),
        )?;
        let manifest: ImageManifest = parse(&format!("manifest {mdigest}"), &mdata)?;
        let cdesc = manifest.config();
        let cdata = src.read_small(&blob_name(cdesc.digest().as_ref(), "config")?)?;
        verify(
            &format!("config {}", cdesc.digest()),
            &cdata,
            cdesc.digest().as_ref(),
            Some(cdesc.size()),
        )?;
        let config: ImageConfiguration = parse(&format!("config {}", cdesc.digest()), &cdata)?;
        check_platform(&config, &format!("image `{name}`"))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::Format {
                path: src.path().to_path_buf(),
                reason: format!(
                    "manifest {mdigest} has {} layers but its config lists {} diff_ids",
                    manifest.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        for (l, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let comp = Compression::of_media_type(l.media_type())?;
            let file = blob_name(l.digest().as_ref(), "layer")?;
            if !src.exists(&file) && !st.store.layer_path(diff_id)?.join("diff").is_dir() {
                return Err(ImageError::Unsupported(format!(
                    "layer {} ({}) is not in the archive: foreign layers are not fetched",
                    l.digest(),
                    l.media_type()
                )));
            }
            st.add_layer(
                src,
                &file,
                diff_id,
                Some(comp),
                Some((l.digest().as_ref(), l.size())),
                opts.progress,
            )?;
        }
        st.add_blob(&mdigest, &mdata)?;
        st.add_blob(cdesc.digest().as_ref(), &cdata)?;
        st.names.push((name, mdigest));
    }
    Ok(())
}

/// One image of a docker archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn import_docker(
    src: &Source,
    st: &mut Staging<'_>,
    opts: &ImportOptions<'_>,
) -> Result<(), ImageError> {
    let what = src.path().display().to_string();
    let entries: Vec<DockerEntry> = parse(
        &format!("manifest.json of {what}"),
        &src.read_small("manifest.json")?,
    )?;
    if entries.is_empty() {
        return Err(ImageError::Format {
            path: src.path().to_path_buf(),
            reason: "manifest.json lists no image".into(),
        });
    }
    if opts.name.is_some() && entries.len() > 1 {
        return Err(ImageError::Format {
            path: src.path().to_path_buf(),
            reason: "--name needs an archive with one image; this one has several".into(),
        });
    }
    if let Some(p) = opts.progress {
        p.total(
            entries
                .iter()
                .flat_map(|e| &e.layers)
                .map(|l| src.size(l))
                .sum(),
        );
    }
    for e in entries {
        let names: Vec<String> = match &opts.name {
            Some(n) => vec![image_name(n)?],
            None => e
                .repo_tags
                .iter()
                .flatten()
                .map(|n| image_name(n))
                .collect::<Result<_, _>>()?,
        };
        if names.is_empty() {
            return Err(ImageError::Format {
                path: src.path().to_path_buf(),
                reason: format!(
                    "image {} has no RepoTags; hint: pass --name NAME[:TAG]",
                    e.config
                ),
            });
        }
        let cdata = src.read_small(&e.config)?;
        let cdigest = sha256(&cdata);
        // The config's file name is its digest (`<hex>.json` or `blobs/sha256/<hex>`).
        let stem = Path::new(&e.config)
            .file_name()
            .map(|s| s.to_string_lossy().trim_end_matches(".json").to_string())
            .unwrap_or_default();
        if super::reference::is_sha256_hex(&stem) && cdigest != format!("sha256:{stem}") {
            return Err(ImageError::DigestMismatch {
                what: format!("config `{}`", e.config),
                expected: format!("sha256:{stem}"),
                actual: cdigest,
            });
        }
        let config: ImageConfiguration = parse(&format!("config `{}`", e.config), &cdata)?;
        check_platform(&config, &format!("image `{}`", names[0]))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != e.layers.len() {
            return Err(ImageError::Format {
                path: src.path().to_path_buf(),
                reason: format!(
                    "image {} has {} layers but its config lists {} diff_ids",
                    e.config,
                    e.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let mut descs = Vec::new();
        for (file, diff_id) in e.layers.iter().zip(&diff_ids) {
            // Blob names (`blobs/sha256/<hex>`) are digests to check; `<id>/layer.tar` names are not.
            let hex = file
                .strip_prefix("blobs/sha256/")
                .filter(|h| super::reference::is_sha256_hex(h));
            let expect = hex.map(|h| (format!("sha256:{h}"), src.size(file)));
            // Without a digest to trust, a known layer is still read to learn its blob digest.
            let (comp, digest, size) = match &expect {
                Some((d, s)) => {
                    st.add_layer(src, file, diff_id, None, Some((d, *s)), opts.progress)?
                }
                None => st.add_layer_unchecked(src, file, diff_id, opts.progress)?,
            };
            descs.push(
                DescriptorBuilder::default()
                    .media_type(comp.oci_media_type())
                    .digest(
                        digest.parse::<oci_spec::image::Digest>().map_err(|e| {
                            ImageError::Unsupported(format!("digest `{digest}`: {e}"))
                        })?,
                    )
                    .size(size)
                    .build()
                    .map_err(|e| ImageError::Unsupported(format!("layer descriptor: {e}")))?,
            );
        }
        let config_desc = DescriptorBuilder::default()
            .media_type(MediaType::ImageConfig)
            .digest(
                cdigest
                    .parse::<oci_spec::image::Digest>()
                    .map_err(|e| ImageError::Unsupported(format!("digest `{cdigest}`: {e}")))?,
            )
            .size(cdata.len() as u64)
            .build()
            .map_err(|e| ImageError::Unsupported(format!("config descriptor: {e}")))?;
        // docker archives carry no manifest: write the OCI one a registry would serve.
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(descs)
            .build()
            .map_err(|e| ImageError::Unsupported(format!("manifest: {e}")))?;
        let mdata = serde_json::to_vec(&manifest).map_err(|e| ImageError::json("manifest", e))?;
        let mdigest = sha256(&mdata);
        st.add_blob(&mdigest, &mdata)?;
        st.add_blob(&cdigest, &cdata)?;
        for n in names {
            st.names.push((n, mdigest.clone()));
        }
    }
    Ok(())
}

impl Staging<'_> {
    /// A docker-archive layer without a blob digest: always read (to learn its digest), unpacked
    /// unless the store has it.
    fn add_layer_unchecked(
        &mut self,
        src: &Source,
        file: &str,
        diff_id: &str,
        progress: Option<&dyn ImportProgress>,
    ) -> Result<(Compression, String, u64), ImageError> {
        let hex = hex_of(diff_id, "layer")?;
        let have = self.store.layer_path(diff_id)?.join("diff").is_dir()
            || self.layers.iter().any(|(h, _)| *h == hex);
        if !have {
            return self.add_layer(src, file, diff_id, None, None, progress);
        }
        let (comp, digest, size) = hash_blob(src, file, progress)?;
        self.report.layers_reused += 1;
        Ok((comp, digest, size))
    }
}

/// Read a layer blob through: its compression (by magic bytes), digest and size.
fn hash_blob(
    src: &Source,
    file: &str,
    progress: Option<&dyn ImportProgress>,
) -> Result<(Compression, String, u64), ImageError> {
    let advance = |n: u64| {
        if let Some(p) = progress {
            p.advance(n);
        }
    };
    let err = |e| ImageError::io("read layer", &src.path().join(file), e);
    let (r, d) = Hashing::new(src.reader(file)?, Some(&advance));
    let mut r = BufReader::with_capacity(256 << 10, r);
    let comp = Compression::sniff(r.fill_buf().map_err(err)?);
    io::copy(&mut r, &mut io::sink()).map_err(err)?;
    let (digest, size) = d.finish();
    Ok((comp, digest, size))
}

/// A blob against its descriptor's (digest, size).
fn check_blob(file: &str, want: (&str, u64), got: (&str, u64)) -> Result<(), ImageError> {
    if got.0 != want.0 {
        return Err(ImageError::DigestMismatch {
            what: format!("layer blob `{file}`"),
            expected: want.0.to_string(),
            actual: got.0.to_string(),
        });
    }
    if got.1 != want.1 {
        return Err(ImageError::SizeMismatch {
            what: format!("layer blob `{file}`"),
            expected: want.1,
            actual: got.1,
        });
    }
    Ok(())
}
