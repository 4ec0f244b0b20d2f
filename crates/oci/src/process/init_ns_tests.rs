//! The namespace plan of stage 1 and the init's choice between mounting and chroot.

use nix::sched::CloneFlags as F;
use oci_spec::runtime::Spec;
use serde_json::json;

use super::{NsStep, has_mount_ns, ns_name, ns_steps};
use crate::container::spec::namespaces;

fn spec(namespaces: serde_json::Value) -> Spec {
    serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "linux": {"namespaces": namespaces},
    }))
    .unwrap()
}

/// The steps stage 1 takes for `s`, with the joins named by kind.
fn steps_of(s: &Spec) -> (Vec<F>, Vec<NsStep>) {
    let plan = namespaces(s).unwrap();
    let kinds: Vec<F> = plan.joins.iter().map(|(k, _)| *k).collect();
    let steps = ns_steps(&kinds, plan.new_user, plan.unshare);
    (kinds, steps)
}

#[test]
fn all_new_namespaces_are_one_unshare() {
    let s = spec(json!([
        {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
        {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"},
    ]));
    let (kinds, steps) = steps_of(&s);
    assert!(kinds.is_empty());
    assert_eq!(
        steps,
        [NsStep::Unshare(
            F::CLONE_NEWPID
                | F::CLONE_NEWNET
                | F::CLONE_NEWIPC
                | F::CLONE_NEWUTS
                | F::CLONE_NEWNS
                | F::CLONE_NEWCGROUP
        )]
    );
}

#[test]
fn a_new_user_namespace_comes_first_then_root_in_it_then_the_others() {
    let s = spec(json!([{"type": "mount"}, {"type": "pid"}, {"type": "user"}]));
    let (_, steps) = steps_of(&s);
    assert_eq!(
        steps,
        [
            NsStep::UnshareUser,
            NsStep::BecomeRoot,
            // CLONE_NEWUSER is never part of the second unshare: the others are owned by
            // the user namespace made (and mapped) before.
            NsStep::Unshare(F::CLONE_NEWNS | F::CLONE_NEWPID),
        ]
    );
}

#[test]
fn joins_come_before_any_unshare_user_first_mount_last() {
    let s = spec(json!([
        {"type": "mount", "path": "/proc/1/ns/mnt"},
        {"type": "network", "path": "/var/run/netns/x"},
        {"type": "pid"},
        {"type": "user", "path": "/proc/1/ns/user"},
        {"type": "ipc", "path": "/proc/1/ns/ipc"},
    ]));
    let (kinds, steps) = steps_of(&s);
    assert_eq!(
        kinds,
        [
            F::CLONE_NEWUSER,
            F::CLONE_NEWNET,
            F::CLONE_NEWIPC,
            F::CLONE_NEWNS
        ]
    );
    // A joined user namespace: no unshare of one, but root in it all the same.
    assert_eq!(
        steps,
        [
            NsStep::Join(0),
            NsStep::Join(1),
            NsStep::Join(2),
            NsStep::Join(3),
            NsStep::BecomeRoot,
            NsStep::Unshare(F::CLONE_NEWPID),
        ]
    );
}

#[test]
fn without_a_user_namespace_the_ids_are_left_alone() {
    let steps = ns_steps(&[F::CLONE_NEWNET], false, F::CLONE_NEWNS | F::CLONE_NEWPID);
    assert_eq!(
        steps,
        [
            NsStep::Join(0),
            NsStep::Unshare(F::CLONE_NEWNS | F::CLONE_NEWPID)
        ]
    );
    assert!(!steps.contains(&NsStep::BecomeRoot));
}

#[test]
fn exec_joins_only_and_unshares_nothing() {
    // `exec` passes the container's namespaces as joins and no new ones.
    let joins = [F::CLONE_NEWUSER, F::CLONE_NEWPID, F::CLONE_NEWNS];
    assert_eq!(
        ns_steps(&joins, false, F::empty()),
        [
            NsStep::Join(0),
            NsStep::Join(1),
            NsStep::Join(2),
            NsStep::BecomeRoot,
            NsStep::Unshare(F::empty()),
        ]
    );
    assert_eq!(
        ns_steps(&[], false, F::empty()),
        [NsStep::Unshare(F::empty())]
    );
}

#[test]
fn the_init_mounts_only_with_a_mount_namespace_new_or_joined() {
    assert!(has_mount_ns(F::CLONE_NEWNS | F::CLONE_NEWPID, &[]));
    assert!(has_mount_ns(
        F::empty(),
        &[F::CLONE_NEWUSER, F::CLONE_NEWNS]
    ));
    assert!(!has_mount_ns(F::CLONE_NEWPID, &[F::CLONE_NEWNET]));
    // The same answer as the plan's (create validates with it, the init acts on it).
    for ns in [
        json!([{"type": "mount"}]),
        json!([{"type": "mount", "path": "/proc/1/ns/mnt"}]),
        json!([{"type": "pid"}]),
        json!([]),
    ] {
        let s = spec(ns.clone());
        let plan = namespaces(&s).unwrap();
        let kinds: Vec<F> = plan.joins.iter().map(|(k, _)| *k).collect();
        assert_eq!(has_mount_ns(plan.unshare, &kinds), plan.has_mount(), "{ns}");
    }
}

#[test]
fn setns_errors_name_the_namespace_like_the_spec() {
    for (k, name) in [
        (F::CLONE_NEWUSER, "user"),
        (F::CLONE_NEWNS, "mount"),
        (F::CLONE_NEWPID, "pid"),
        (F::CLONE_NEWNET, "network"),
        (F::CLONE_NEWIPC, "ipc"),
        (F::CLONE_NEWUTS, "uts"),
        (F::CLONE_NEWCGROUP, "cgroup"),
        (F::from_bits_retain(libc::CLONE_NEWTIME), "time"),
    ] {
        assert_eq!(ns_name(k), name);
    }
}
