//! Image names as docker and kubelet read them (`busybox` is `docker.io/library/busybox:latest`),
//! and kubelet's `imagePullPolicy` defaulting.

use std::fmt;

use super::ImageError;

/// The registry of names without one (docker's default).
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag of names with neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A normalized image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `quay.io`...
    pub registry: String,
    /// `library/busybox`
    pub repository: String,
    /// `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`
    pub digest: Option<String>,
}

impl Reference {
    /// Parse and normalize `name` like docker's `ParseNormalizedNamed` plus kubelet's default
    /// tag: `busybox` → `docker.io/library/busybox:latest`.
    pub fn parse(name: &str) -> Result<Reference, ImageError> {
        let bad = |why: &str| ImageError::InvalidReference {
            name: name.to_string(),
            reason: why.to_string(),
        };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        let (rest, digest) = match name.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (name, None),
        };
        if let Some(d) = digest {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("only sha256 digests are supported"))?;
            if !is_sha256_hex(hex) {
                return Err(bad("a sha256 digest has 64 lowercase hex digits"));
            }
        }
        // The tag is after the last ':' of the last path component (a ':' before a '/' is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(bad(
                "a tag is 1 to 128 of [A-Za-z0-9_.-] and does not start with '.' or '-'",
            ));
        }
        let (registry, repo) = match path.split_once('/') {
            Some((first, r))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), r.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), path.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository names must be lowercase"));
        }
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                "a repository is `/`-separated components of [a-z0-9] joined by '.', '_', '__' or '-'",
            ));
        }
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// `registry/repository` without tag or digest.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag` (the store's key), or None for a digest-only reference.
    pub fn tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.repo_name()))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repo_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the image is absent.
    IfNotPresent,
    /// Never pull: a missing image is `ErrImageNeverPull`.
    Never,
}

/// The waiting reason of a container whose image is absent with `imagePullPolicy: Never`.
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";

/// kubelet's pull policy: the explicit one, else `Always` for tag `latest` (which includes no tag
/// and no digest), else `IfNotPresent` (`SetDefaults_Container`).
pub fn pull_policy(image_ref: &str, explicit: Option<&str>) -> Result<PullPolicy, ImageError> {
    match explicit {
        Some("Always") => Ok(PullPolicy::Always),
        Some("IfNotPresent") => Ok(PullPolicy::IfNotPresent),
        Some("Never") => Ok(PullPolicy::Never),
        Some(other) => Err(ImageError::InvalidPullPolicy(other.to_string())),
        None => {
            let r = Reference::parse(image_ref)?;
            Ok(if r.tag.as_deref() == Some(DEFAULT_TAG) {
                PullPolicy::Always
            } else {
                PullPolicy::IfNotPresent
            })
        }
    }
}

/// The waiting reason after a failed pull.
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
/// The waiting reason while the next pull waits for its backoff (10 s doubling to 300 s).
pub const IMAGE_PULL_BACKOFF: &str = "ImagePullBackOff";

/// kubelet's message for `ErrImageNeverPull`; `image` is the name as the pod spec wrote it.
pub fn never_pull_message(image: &str) -> String {
    format!("Container image \"{image}\" is not present with pull policy of Never")
}

/// kubelet's message for `ImagePullBackOff`.
pub fn back_off_message(image: &str) -> String {
    format!("Back-off pulling image \"{image}\"")
}

/// kubelet's `Pulled` event when the image is present and not pulled.
pub fn already_present_message(image: &str) -> String {
    format!("Container image \"{image}\" already present on machine")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn names_normalize_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("index.docker.io/foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(norm("quay.io/a/b:v1"), "quay.io/a/b:v1");
        assert_eq!(norm("localhost/bb"), "localhost/bb:latest");
        assert_eq!(norm("localhost:5000/bb:x"), "localhost:5000/bb:x");
        assert_eq!(norm("127.0.0.1:5000/a/b/c"), "127.0.0.1:5000/a/b/c:latest");
        assert_eq!(norm("foo/bar"), "docker.io/foo/bar:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            norm(&format!("busybox:1.36@{d}")),
            format!("docker.io/library/busybox:1.36@{d}")
        );
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.tagged(), None);
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        for bad in [
            "",
            "BusyBox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            "bad_-name",
            "-lead",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid image name `{bad}`: ")),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            Reference::parse("Busybox").unwrap_err().to_string(),
            "invalid image name `Busybox`: repository names must be lowercase"
        );
        assert!(Reference::parse("a__b/c-d---e.f_g").is_ok());
    }

    #[test]
    fn pull_policy_defaults_like_kubelet() {
        use PullPolicy::*;
        assert_eq!(pull_policy("busybox", None).unwrap(), Always);
        assert_eq!(pull_policy("busybox:latest", None).unwrap(), Always);
        assert_eq!(pull_policy("busybox:1.36", None).unwrap(), IfNotPresent);
        let d = format!("busybox@sha256:{}", "0".repeat(64));
        assert_eq!(pull_policy(&d, None).unwrap(), IfNotPresent);
        assert_eq!(pull_policy("busybox", Some("Never")).unwrap(), Never);
        assert_eq!(
            pull_policy("busybox:1", Some("Always")).unwrap(),
            PullPolicy::Always
        );
        assert_eq!(
            pull_policy("busybox", Some("IfNotPresent")).unwrap(),
            IfNotPresent
        );
        assert_eq!(
            pull_policy("busybox", Some("always"))
                .unwrap_err()
                .to_string(),
            "imagePullPolicy: Unsupported value: \"always\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        );
    }

    #[test]
    fn never_pull_message_is_kubelets() {
        assert_eq!(
            never_pull_message("busybox:1.36"),
            "Container image \"busybox:1.36\" is not present with pull policy of Never"
        );
        assert_eq!(ERR_IMAGE_NEVER_PULL, "ErrImageNeverPull");
        assert_eq!(back_off_message("a:1"), "Back-off pulling image \"a:1\"");
        assert_eq!(
            already_present_message("a:1"),
            "Container image \"a:1\" already present on machine"
        );
        assert_eq!(
            (ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF),
            ("ErrImagePull", "ImagePullBackOff")
        );
    }
}
