//! An image's config merged with a container's spec the way kubelet and containerd's CRI do it.

use oci_spec::image::ImageConfiguration;

/// The process argv of a container: Kubernetes' rule as containerd's CRI applies it
/// (`WithProcessArgs`, after moby's commit.go):
/// - `command` given: the image's Entrypoint and Cmd are ignored; argv is command + args;
/// - only `args` given: image Entrypoint + args (Cmd dropped);
/// - neither: image Entrypoint + Cmd. An Entrypoint of exactly `[""]` counts as unset.
///
/// An empty list counts as absent (kubelet sends both through the CRI, where an empty repeated
/// field is nil). An empty result means neither the pod nor the image names a program: the
/// caller reports [`NO_COMMAND`].
pub fn merge_process(
    image_config: &ImageConfiguration,
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Vec<String> {
    let cfg = image_config.config().as_ref();
    let mut argv: Vec<String> = command.map(<[String]>::to_vec).unwrap_or_default();
    let mut args: Vec<String> = args.map(<[String]>::to_vec).unwrap_or_default();
    if argv.is_empty() {
        if args.is_empty() {
            args = cfg.and_then(|c| c.cmd().clone()).unwrap_or_default();
        }
        let entrypoint = cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default();
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            argv = entrypoint;
        }
    }
    argv.extend(args);
    argv
}

/// containerd's error when neither pod nor image gives a program to run.
pub const NO_COMMAND: &str = "no command specified";

/// The environment: the image's `Env` first, then the container's, a container variable replacing
/// the image's value in place (containerd `WithEnv`).
pub fn merge_env(
    image_config: &ImageConfiguration,
    container_env: &[(String, String)],
) -> Vec<String> {
    let mut out: Vec<String> = image_config
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    for (k, v) in container_env {
        let kv = format!("{k}={v}");
        match out
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
        {
            Some(e) => *e = kv,
            None => out.push(kv),
        }
    }
    out
}

/// The container's working directory: its own `workingDir`, else the image's, else `/`.
pub fn working_dir(image_config: &ImageConfiguration, container: Option<&str>) -> String {
    container
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            image_config
                .config()
                .as_ref()
                .and_then(|c| c.working_dir().clone())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "/".to_string())
}

/// The image's `User` (`name`, `uid`, `uid:gid`, `user:group`), if any. A pod's
/// `securityContext.runAsUser` wins over it.
pub fn user(image_config: &ImageConfiguration) -> Option<String> {
    image_config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .filter(|s| !s.is_empty())
}

/// The image's `StopSignal` (`SIGTERM`, `15`...), if any; the default is SIGTERM.
pub fn stop_signal(image_config: &ImageConfiguration) -> Option<String> {
    image_config
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().clone())
        .filter(|s| !s.is_empty())
}

/// Resolve an image `User` (`uid`, `uid:gid`, `name`, `name:group`, `uid:group`, `name:gid`) to
/// numeric ids with the image's `/etc/passwd` and `/etc/group` contents, as containerd's
/// `WithUser` does: a bare name takes its primary group from passwd; a bare uid takes the gid of
/// its passwd entry, or 0 when it has none. An unknown name is an error.
pub fn lookup_user(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    };
    let users = entries(passwd);
    let by_name = |name: &str| users.iter().find(|f| f.len() >= 4 && f[0] == name);
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => {
            let gid = users
                .iter()
                .find(|f| f.len() >= 4 && f[2] == uid.to_string())
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(0);
            (uid, gid)
        }
        Err(_) => {
            let f = by_name(user).ok_or_else(|| {
                format!("image user `{user}`: no such user in the image's /etc/passwd")
            })?;
            let uid = f[2]
                .parse()
                .map_err(|_| format!("image user `{user}`: bad uid `{}` in /etc/passwd", f[2]))?;
            let gid = f[3]
                .parse()
                .map_err(|_| format!("image user `{user}`: bad gid `{}` in /etc/passwd", f[3]))?;
            (uid, gid)
        }
    };
    let gid = match grp {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => entries(group)
                .iter()
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("image group `{g}`: no such group in the image's /etc/group")
                })?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::lookup_user;

    #[test]
    fn image_users_resolve_like_containerd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n";
        let group = "root:x:0:\nwww:x:34:\nstaff:x:50:\n";
        let l = |s: &str| lookup_user(s, passwd, group);
        assert_eq!(l("www"), Ok((33, 34)));
        assert_eq!(l("33"), Ok((33, 34)));
        assert_eq!(l("1000"), Ok((1000, 0)));
        assert_eq!(l("1000:7"), Ok((1000, 7)));
        assert_eq!(l("www:staff"), Ok((33, 50)));
        assert_eq!(l("0:staff"), Ok((0, 50)));
        assert_eq!(
            l("nobody").unwrap_err(),
            "image user `nobody`: no such user in the image's /etc/passwd"
        );
        assert!(l("www:wheel").unwrap_err().contains("no such group"));
    }
}
