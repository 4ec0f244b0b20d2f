//! Security and fault hardening (issue 12): each test names the defence it checks and, in its
//! comment, how it was seen to fail with that defence removed.

mod crash;
mod cve;
mod oci;
mod pod;
