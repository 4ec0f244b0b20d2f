//! Pods: subPath escapes, name traversal, private state, sandbox name collisions, forced removal.
