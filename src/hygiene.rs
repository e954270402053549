//! SPEC §7: warn about sidecars whose preStop makes them exit early. The
//! kubelet stops sidecars after the main containers; a preStop that tells the
//! proxy to quit, or kills it, brings back the shutdown race native sidecars
//! exist to end.

use serde_json::Value;

use crate::convert::Layout;
use crate::hooks::exec_command;
use crate::plan::Findings;

const EARLY_EXIT_PATHS: &[&str] = &["quitquitquit", "/shutdown"];
/// Whole words: `kill` and friends end the proxy; `shutdown` is how
/// `cloud-sql-proxy shutdown` (and other admin CLIs) ask it to quit.
const EARLY_EXIT_WORDS: &[&str] = &["kill", "pkill", "killall", "shutdown"];

pub fn check(layout: &Layout, findings: &mut Findings) {
    for sidecar in layout.native_sidecars.iter().chain(&layout.legacy_sidecars) {
        if let Some(trigger) = sidecar.hook("preStop").and_then(early_exit) {
            findings.warn(format!(
                "{}: preStop calls {trigger}, so the sidecar exits before the app: defeats ordered shutdown",
                sidecar.name
            ));
        }
    }
}

/// What in the hook makes the sidecar exit early, if anything.
fn early_exit(hook: &Value) -> Option<String> {
    if let Some(command) = exec_command(hook) {
        for word in command
            .iter()
            .flat_map(|argument| argument.split_whitespace())
        {
            if let Some(path) = EARLY_EXIT_PATHS.iter().find(|path| word.contains(*path)) {
                return Some((*path).to_string());
            }
            if EARLY_EXIT_WORDS.contains(&word) {
                return Some(word.to_string());
            }
        }
    }
    let path = hook.get("httpGet")?.get("path")?.as_str()?;
    ["/quitquitquit", "/shutdown"]
        .iter()
        .any(|suffix| path.ends_with(suffix))
        .then(|| format!("GET {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(command: &[&str]) -> Option<String> {
        early_exit(&json!({"exec": {"command": command}}))
    }

    #[test]
    fn exec_hooks_that_quit_or_kill_are_found() {
        assert_eq!(
            exec(&[
                "curl",
                "-sf",
                "-XPOST",
                "http://127.0.0.1:15020/quitquitquit"
            ])
            .as_deref(),
            Some("quitquitquit")
        );
        assert!(
            exec(&[
                "/bin/sh",
                "-c",
                "sleep 5 && wget -qO- localhost:9901/shutdown"
            ])
            .is_some()
        );
        assert_eq!(
            exec(&["/bin/sh", "-c", "kill -TERM 1"]).as_deref(),
            Some("kill")
        );
        assert!(exec(&["pkill", "envoy"]).is_some());
        assert!(exec(&["killall", "-q", "vault"]).is_some());
        assert_eq!(
            exec(&["/cloud-sql-proxy", "shutdown"]).as_deref(),
            Some("shutdown")
        );
        assert_eq!(
            exec(&[
                "/bin/sh",
                "-c",
                "sleep 10; cloud-sql-proxy shutdown --admin-port 9092"
            ])
            .as_deref(),
            Some("shutdown")
        );
    }

    #[test]
    fn harmless_hooks_are_not_flagged() {
        assert_eq!(exec(&["/bin/sh", "-c", "sleep 10"]), None);
        assert_eq!(exec(&["/usr/local/bin/pilot-agent", "wait"]), None);
        // a word that merely contains "kill" is not the kill command
        assert_eq!(exec(&["/bin/skill-check"]), None);
        assert_eq!(exec(&["/bin/graceful-shutdown-wait"]), None);
        assert_eq!(early_exit(&json!({"sleep": {"seconds": 5}})), None);
    }

    #[test]
    fn http_hooks_ending_in_quit_or_shutdown_are_found() {
        let http = |path: &str| early_exit(&json!({"httpGet": {"path": path, "port": 15000}}));
        assert_eq!(http("/quitquitquit").as_deref(), Some("GET /quitquitquit"));
        assert!(http("/admin/shutdown").is_some());
        assert_eq!(http("/shutdown/status"), None);
        assert_eq!(http("/drain"), None);
    }
}
