//! OCI runtime: sysctls, foreign cgroups, locks after crashes, bounded work on big configs.
