//! OCI spec values in the kernel's terms, for the spec checks ([`crate::container::spec`]) and
//! the stages that apply them ([`crate::process`]): capabilities, rlimits, sysctl files.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sys::resource::Resource;
use oci_spec::runtime::PosixRlimitType;

/// A sysctl key in dotted form: runc accepts `net/ipv4/ip_forward` too, where a dot inside a
/// component (an interface name such as `eno2.100`) stays a dot in the file name; the first
/// separator decides the form (sysctl.d(5)).
pub fn sysctl_dotted(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// The file under `/proc/sys` of a sysctl key (either form).
pub fn sysctl_file(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(
        sysctl_dotted(key)
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect::<String>(),
    )
}

/// `RLIMIT_*` from the spec to the kernel's resource.
pub fn rlimit_resource(t: &PosixRlimitType) -> Resource {
    use PosixRlimitType as P;
    match t {
        P::RlimitCpu => Resource::RLIMIT_CPU,
        P::RlimitFsize => Resource::RLIMIT_FSIZE,
        P::RlimitData => Resource::RLIMIT_DATA,
        P::RlimitStack => Resource::RLIMIT_STACK,
        P::RlimitCore => Resource::RLIMIT_CORE,
        P::RlimitRss => Resource::RLIMIT_RSS,
        P::RlimitNproc => Resource::RLIMIT_NPROC,
        P::RlimitNofile => Resource::RLIMIT_NOFILE,
        P::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        P::RlimitAs => Resource::RLIMIT_AS,
        P::RlimitLocks => Resource::RLIMIT_LOCKS,
        P::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        P::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        P::RlimitNice => Resource::RLIMIT_NICE,
        P::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        P::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// An OCI capability as the `caps` crate knows it; `None` for one this kernel does not have
/// (runc ignores those too).
pub fn to_caps(c: &oci_spec::runtime::Capability) -> Option<caps::Capability> {
    let cap = caps::Capability::from_str(&format!("CAP_{c}")).ok()?;
    (cap.index() <= last_cap()).then_some(cap)
}

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`, read
/// once; probing each capability with prctl would cost 41 syscalls per lookup).
fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                caps::runtime::thread_all_supported()
                    .iter()
                    .map(|c| c.index())
                    .max()
                    .unwrap_or(40)
            })
    })
}

/// Parse a list like `0-3,7` (the kernel's cpu/node list format) into sorted, distinct
/// numbers no larger than `max`. Like runc, empty elements and blanks around numbers are
/// skipped.
pub fn parse_list(s: &str, max: usize) -> Result<Vec<usize>, String> {
    let num = |t: &str| -> Result<usize, String> {
        let t = t.trim();
        let n: usize = t.parse().map_err(|_| format!("{t:?} is not a number"))?;
        if n > max {
            return Err(format!("values larger than {max} are not supported"));
        }
        Ok(n)
    };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("invalid range: {part}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_files_of_both_forms() {
        assert_eq!(
            sysctl_file("net/ipv4/conf/eno2.100/rp_filter"),
            Path::new("/proc/sys/net/ipv4/conf/eno2.100/rp_filter")
        );
        assert_eq!(
            sysctl_file("kernel.msgmax"),
            Path::new("/proc/sys/kernel/msgmax")
        );
    }
}
