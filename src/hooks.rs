//! SPEC §6: how long a lifecycle hook keeps a container alive. Only hooks
//! whose duration is plain to see count: the `sleep` action, and an exec hook
//! that is, or whose shell script begins with, `sleep N`. Anything else
//! counts 0: the policy never guesses what a script does.

use serde_json::Value;

use crate::pod::{Container, MAX_SECONDS};

const SLEEP_COMMANDS: &[&str] = &["sleep", "/bin/sleep", "/usr/bin/sleep"];
const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "/bin/sh",
    "/bin/bash",
    "/usr/bin/sh",
    "/usr/bin/bash",
];

/// Seconds the container's preStop hook takes, 0 when it cannot be read.
pub fn pre_stop_seconds(container: &Container) -> u64 {
    container.hook("preStop").map_or(0, hook_seconds)
}

/// `sleep.seconds` of a hook's sleep action, when it is an integer.
pub fn sleep_action_seconds(hook: &Value) -> Option<u64> {
    hook.get("sleep")?.get("seconds")?.as_u64()
}

/// The words of an exec hook: its command's arguments.
pub fn exec_command(hook: &Value) -> Option<Vec<&str>> {
    hook.get("exec")?
        .get("command")?
        .as_array()?
        .iter()
        .map(Value::as_str)
        .collect()
}

fn hook_seconds(hook: &Value) -> u64 {
    let sleep_action = sleep_action_seconds(hook).unwrap_or(0);
    let exec_sleep = exec_command(hook)
        .and_then(|command| exec_sleep_seconds(&command))
        .unwrap_or(0);
    sleep_action.max(exec_sleep)
}

/// `sleep N`, or a shell (`sh -c`, `bash -ec`, ...) whose single script
/// argument begins with such a sleep.
fn exec_sleep_seconds(command: &[&str]) -> Option<u64> {
    match command {
        [program, seconds] if SLEEP_COMMANDS.contains(program) => parse_seconds(seconds),
        [shell, flags @ .., script] if SHELLS.contains(shell) && is_script_flag_run(flags) => {
            script_sleep_seconds(script)
        }
        _ => None,
    }
}

/// The words between the shell and its script: flags only, the last one
/// being the one that takes the script (`-c`, `-ec`).
fn is_script_flag_run(flags: &[&str]) -> bool {
    match flags.split_last() {
        Some((script_flag, others)) => {
            script_flag.starts_with('-')
                && script_flag.contains('c')
                && others.iter().all(|flag| flag.starts_with('-'))
        }
        None => false,
    }
}

/// `N` or `Ns`, N a non-negative integer.
fn parse_seconds(word: &str) -> Option<u64> {
    let digits = word.strip_suffix('s').unwrap_or(word);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|seconds| *seconds <= MAX_SECONDS)
}

/// A script that begins with `[exec ]sleep N[s]` followed by its end, `;`,
/// `&&` or a newline.
fn script_sleep_seconds(script: &str) -> Option<u64> {
    let is_blank = |c: char| c == ' ' || c == '\t';
    let rest = script.trim_start();
    let rest = match rest.strip_prefix("exec") {
        Some(after) if after.starts_with(is_blank) => after.trim_start_matches(is_blank),
        _ => rest,
    };
    let program_end = rest.find(is_blank)?;
    if !SLEEP_COMMANDS.contains(&&rest[..program_end]) {
        return None;
    }
    let rest = rest[program_end..].trim_start_matches(is_blank);
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == 's'))
        .unwrap_or(rest.len());
    let seconds = parse_seconds(&rest[..number_end])?;
    let after = rest[number_end..].trim_start_matches(is_blank);
    let terminated = after.is_empty()
        || after.starts_with(';')
        || after.starts_with("&&")
        || after.starts_with('\n')
        || after.starts_with("\r\n");
    terminated.then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(command: &[&str]) -> u64 {
        hook_seconds(&json!({"exec": {"command": command}}))
    }

    #[test]
    fn sleep_action_counts_its_seconds() {
        assert_eq!(hook_seconds(&json!({"sleep": {"seconds": 25}})), 25);
        assert_eq!(hook_seconds(&json!({"sleep": {"seconds": "25"}})), 0);
        assert_eq!(hook_seconds(&json!({"sleep": {}})), 0);
    }

    #[test]
    fn plain_exec_sleeps_count() {
        assert_eq!(exec(&["sleep", "15"]), 15);
        assert_eq!(exec(&["/bin/sleep", "15s"]), 15);
        assert_eq!(exec(&["/usr/bin/sleep", "0"]), 0);
        assert_eq!(exec(&["/usr/bin/sleep", "7"]), 7);
    }

    #[test]
    fn shell_scripts_that_begin_with_a_sleep_count() {
        assert_eq!(exec(&["sh", "-c", "sleep 20"]), 20);
        assert_eq!(exec(&["/bin/sh", "-c", "sleep 20 && echo drained"]), 20);
        assert_eq!(exec(&["bash", "-ec", "sleep 20; nginx -s quit"]), 20);
        assert_eq!(exec(&["/bin/bash", "-c", "exec sleep 12s"]), 12);
        assert_eq!(
            exec(&[
                "/usr/bin/bash",
                "-c",
                "  sleep 9 \n curl -X POST localhost/drain"
            ]),
            9
        );
        assert_eq!(exec(&["/usr/bin/sh", "-c", "/usr/bin/sleep\t5\t;"]), 5);
        assert_eq!(exec(&["sh", "-e", "-c", "sleep 3"]), 3);
        assert_eq!(exec(&["sh", "-c", "sleep 4\r\necho done"]), 4);
    }

    #[test]
    fn odd_forms_count_zero() {
        // a single word that no exec can run
        assert_eq!(exec(&["sleep 5"]), 0);
        assert_eq!(exec(&["sleep", "5", "extra"]), 0);
        assert_eq!(exec(&["sleep", "5m"]), 0);
        assert_eq!(exec(&["sleep", "-5"]), 0);
        assert_eq!(exec(&["sleep", "1.5"]), 0);
        assert_eq!(exec(&["sleep", "s"]), 0);
        assert_eq!(exec(&["sleep", "99999999999999999999999"]), 0);
        // not a known shell, no script flag, two script arguments
        assert_eq!(exec(&["zsh", "-c", "sleep 5"]), 0);
        assert_eq!(exec(&["sh", "sleep 5"]), 0);
        assert_eq!(exec(&["sh", "-e", "sleep 5"]), 0);
        assert_eq!(exec(&["sh", "-c", "sleep 5", "extra"]), 0);
        assert_eq!(exec(&["sh", "pipefail", "-c", "sleep 5"]), 0);
        // scripts that do something else first, or after the sleep without a separator
        assert_eq!(exec(&["sh", "-c", "echo draining; sleep 5"]), 0);
        assert_eq!(exec(&["sh", "-c", "sleep 5 || true"]), 0);
        assert_eq!(exec(&["sh", "-c", "sleep 5 & wait"]), 0);
        assert_eq!(exec(&["sh", "-c", "sleep $DRAIN_SECONDS"]), 0);
        assert_eq!(exec(&["sh", "-c", "sleeper 5"]), 0);
        assert_eq!(exec(&["sh", "-c", "execsleep 5"]), 0);
        assert_eq!(exec(&["sh", "-c", "sleep"]), 0);
        // http hooks and malformed commands
        assert_eq!(
            hook_seconds(&json!({"httpGet": {"path": "/drain", "port": 8080}})),
            0
        );
        assert_eq!(hook_seconds(&json!({"exec": {"command": ["sleep", 5]}})), 0);
        assert_eq!(hook_seconds(&json!({"exec": {"command": "sleep 5"}})), 0);
    }
}
