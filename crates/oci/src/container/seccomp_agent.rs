//! Hands a seccomp user-notification listener to the agent at `linux.seccomp.listenerPath`, as
//! runc does (`libcontainer/process_linux.go` `sendContainerProcessState`): one connection per
//! process, one message with runc's `ContainerProcessState` JSON and the listener fd attached
//! (SCM_RIGHTS, its name in `fds`), then the runtime closes its copy.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::Serialize;

use super::ContainerError;
use super::state::{OCI_VERSION, State, Status};
use crate::process::channel::{Channel, Message};
use crate::seccomp::Listener;

/// runc's `specs.ContainerProcessState`.
#[derive(Debug, Serialize)]
struct ContainerProcessState<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    fds: [&'a str; 1],
    pid: i32,
    metadata: &'a str,
    state: ProcessStateOf<'a>,
}

/// runc's `specs.State` (no `rootfs`/`created`/`owner`, unlike `runc state`).
#[derive(Debug, Serialize)]
struct ProcessStateOf<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    status: Status,
    pid: i32,
    bundle: &'a Path,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: &'a std::collections::BTreeMap<String, String>,
}

/// The JSON the agent receives for process `pid` of the container `st` in `status`.
pub fn process_state(
    listener: &Listener,
    st: &State,
    status: Status,
    pid: i32,
) -> serde_json::Result<String> {
    serde_json::to_string(&ContainerProcessState {
        oci_version: OCI_VERSION,
        fds: ["seccompFd"],
        pid,
        metadata: &listener.metadata,
        state: ProcessStateOf {
            oci_version: OCI_VERSION,
            id: &st.id,
            status,
            pid: st.pid,
            bundle: &st.bundle,
            annotations: &st.annotations,
        },
    })
}

/// Connect to the agent and send it `fd` with the process state; `fd` is closed on return.
/// The errors are runc's words.
pub fn send(listener: &Listener, json: &str, fd: OwnedFd) -> Result<(), ContainerError> {
    let path = &listener.path;
    let sock = UnixStream::connect(path).map_err(|e| {
        ContainerError::Other(format!(
            "failed to connect with seccomp agent specified in the seccomp profile: dial unix {}: connect: {}",
            path.display(),
            go_strerror(&e)
        ))
    })?;
    crate::process::channel::send_fd(&sock, json, fd.as_raw_fd()).map_err(|e| {
        ContainerError::Other(format!(
            "cannot send seccomp fd to {}: {}",
            path.display(),
            go_strerror(&std::io::Error::from(e))
        ))
    })?;
    drop(fd);
    Ok(())
}

/// The init sent [`Message::SeccompFd`](crate::process::channel::Message::SeccompFd): give the
/// fd that came with it to the agent and tell the init it may close its copy.
pub fn hand_over(
    ch: &Channel,
    listener: Option<&Listener>,
    st: &State,
    status: Status,
    pid: i32,
) -> Result<(), ContainerError> {
    let fd = ch.take_fd().ok_or_else(|| {
        ContainerError::Other("the init sent no seccomp notify fd with its message".into())
    })?;
    let listener =
        listener.ok_or_else(|| ContainerError::Other("seccomp listenerPath is not set".into()))?;
    let json = process_state(listener, st, status, pid)
        .map_err(|e| ContainerError::Other(format!("encode the seccomp agent's state: {e}")))?;
    send(listener, &json, fd)?;
    ch.send(&Message::SeccompFdDone)?;
    Ok(())
}

/// An io error as Go spells it ("no such file or directory").
fn go_strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let d = nix::errno::Errno::from_raw(n).desc();
            let mut c = d.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => d.to_string(),
            }
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_state_has_runcs_shape() {
        let st = State {
            id: "c1".into(),
            pid: 42,
            pid_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: "root".into(),
            annotations: [("a".to_string(), "b".to_string())].into_iter().collect(),
            cgroup_path: String::new(),
            private_pid_ns: true,
            cgroup_owner: String::new(),
            cgroup_created: true,
            init_exe: None,
        };
        let l = Listener {
            path: "/run/a.sock".into(),
            metadata: "meta".into(),
        };
        let json = process_state(&l, &st, Status::Creating, 43).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"ociVersion":"{OCI_VERSION}","fds":["seccompFd"],"pid":43,"metadata":"meta","state":{{"ociVersion":"{OCI_VERSION}","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{{"a":"b"}}}}}}"#
            )
        );
    }

    #[test]
    fn a_missing_agent_is_reported_in_runcs_words() {
        let dir = tempfile::tempdir().unwrap();
        let l = Listener {
            path: dir.path().join("none.sock"),
            metadata: String::new(),
        };
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let e = send(&l, "{}", fd).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!(
                "failed to connect with seccomp agent specified in the seccomp profile: dial unix {}: connect: no such file or directory",
                l.path.display()
            )),
            "{e}"
        );
    }
}
