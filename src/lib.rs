//! sidecar-lifecycle-policy: a Kubewarden policy that turns sidecars into
//! Kubernetes native sidecars. This file only registers the waPC entry
//! points; the pure core below knows nothing of waPC.

pub mod admission;
pub mod catalogue;
pub mod convert;
pub mod glob;
pub mod grace;
pub mod hooks;
pub mod hygiene;
pub mod native_injection;
pub mod plan;
pub mod pod;
pub mod policy;
pub mod response;
pub mod settings;
pub mod startup;
pub mod typing;

use wapc_guest::prelude::*;

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", |payload| Ok(policy::validate(payload)));
    register_function("validate_settings", |payload| {
        Ok(policy::validate_settings(payload))
    });
    register_function(
        "protocol_version",
        kubewarden_policy_sdk::protocol_version_guest,
    );
}
