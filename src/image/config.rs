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
