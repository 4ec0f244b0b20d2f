//! CNI spec versions: which ones this runtime speaks, and the VERSION answer of a plugin.

use std::cmp::Ordering;
use std::fmt;

use serde::Deserialize;

/// The spec versions this runtime can drive, newest first. 0.1.0/0.2.0 (`ip4`/`ip6` results)
/// and 1.1.0 (GC, STATUS) are refused by name.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["1.0.0", "0.4.0", "0.3.1", "0.3.0"];

/// The version the runtime prefers (what the default network is written in when every plugin
/// supports it).
pub const CURRENT_VERSION: &str = "1.0.0";

/// A parsed `major.minor.patch` spec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpecVersion(pub u32, pub u32, pub u32);

impl SpecVersion {
    /// Parse `1.0.0`; `None` for anything that is not three dot-separated numbers.
    pub fn parse(s: &str) -> Option<SpecVersion> {
        let mut it = s.split('.');
        let mut next = || it.next().and_then(|p| p.parse::<u32>().ok());
        let v = SpecVersion(next()?, next()?, next()?);
        (s.split('.').count() == 3).then_some(v)
    }

    /// CHECK and the cached result as DEL's `prevResult` exist from 0.4.0 on.
    pub fn has_check(self) -> bool {
        self >= SpecVersion(0, 4, 0)
    }
}

impl PartialOrd for SpecVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpecVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0, self.1, self.2).cmp(&(other.0, other.1, other.2))
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Whether the runtime drives plugins at `version`.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// A plugin's answer to `CNI_COMMAND=VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    /// The version the answer itself is written in.
    #[serde(default)]
    pub cni_version: String,
    /// Every spec version the plugin accepts in its config.
    #[serde(default)]
    pub supported_versions: Vec<String>,
}

impl PluginInfo {
    /// What libcni assumes for a plugin that does not know the VERSION command.
    pub fn legacy() -> PluginInfo {
        PluginInfo {
            cni_version: "0.1.0".into(),
            supported_versions: vec!["0.1.0".into()],
        }
    }

    /// Whether the plugin accepts a config in `version`.
    pub fn supports(&self, version: &str) -> bool {
        self.supported_versions.iter().any(|v| v == version)
    }
}

/// The newest version in [`SUPPORTED_VERSIONS`] that every plugin accepts (the version to write
/// a generated config in); `None` when they share none.
pub fn negotiate<'a>(
    plugins: impl IntoIterator<Item = &'a PluginInfo> + Clone,
) -> Option<&'static str> {
    SUPPORTED_VERSIONS
        .into_iter()
        .find(|v| plugins.clone().into_iter().all(|p| p.supports(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        assert_eq!(SpecVersion::parse("1.0.0"), Some(SpecVersion(1, 0, 0)));
        assert!(SpecVersion::parse("0.3.1").unwrap() < SpecVersion::parse("0.4.0").unwrap());
        for bad in ["", "1", "1.0", "1.0.0.0", "a.b.c", "1.0.-1"] {
            assert_eq!(SpecVersion::parse(bad), None, "{bad}");
        }
        assert!(!SpecVersion(0, 3, 1).has_check());
        assert!(SpecVersion(0, 4, 0).has_check());
        assert!(SpecVersion(1, 0, 0).has_check());
    }

    #[test]
    fn negotiation_picks_the_newest_common_version() {
        let debian = PluginInfo {
            cni_version: "1.0.0".into(),
            supported_versions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
                .map(String::from)
                .to_vec(),
        };
        let old = PluginInfo {
            cni_version: "0.4.0".into(),
            supported_versions: ["0.3.0", "0.3.1", "0.4.0"].map(String::from).to_vec(),
        };
        assert_eq!(negotiate([&debian]), Some("1.0.0"));
        assert_eq!(negotiate([&debian, &old]), Some("0.4.0"));
        assert_eq!(negotiate([&debian, &PluginInfo::legacy()]), None);
        // 1.1.0 is not spoken by this runtime even when every plugin offers it.
        let new = PluginInfo {
            cni_version: "1.1.0".into(),
            supported_versions: vec!["1.1.0".into()],
        };
        assert_eq!(negotiate([&new]), None);
    }
}
