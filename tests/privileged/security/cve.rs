//! Defences against the CVEs the README claims (exe overwrite, leaked fds, /dev/null and /dev/console symlinks, inheritable caps, mount targets through symlinks).
