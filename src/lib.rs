//! sidecar-lifecycle-policy: the waPC entry points. Everything else lives in
//! the pure core, which knows nothing of waPC.

pub mod policy;

use kubewarden_policy_sdk::wapc_guest::prelude::*;

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", |payload| Ok(policy::validate(payload)));
    register_function("validate_settings", |payload| Ok(policy::validate_settings(payload)));
    register_function("protocol_version", kubewarden_policy_sdk::protocol_version_guest);
}
