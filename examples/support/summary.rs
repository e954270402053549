//! A readable account of a mutation, computed by comparing the request's
//! object with the mutated object: the patch says the same thing in
//! index-shifted operations. Used by the evaluate example (`make quickstart`)
//! and tested in tests/packaging.rs.

use serde_json::{Map, Value};

/// Where the pod spec is in an object of `kind`.
fn pod_spec_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => "/spec/template/spec",
    }
}

/// The metadata whose annotations are summed up in an object of `kind`, with
/// how the summary names them: the pod's (or pod template's) first.
fn metadata_pointers(kind: &str) -> Vec<(&'static str, String)> {
    match kind {
        "Pod" => vec![("/metadata", "annotation".to_string())],
        "CronJob" => vec![
            (
                "/spec/jobTemplate/spec/template/metadata",
                "annotation".to_string(),
            ),
            (
                "/spec/jobTemplate/metadata",
                "job template annotation".to_string(),
            ),
            ("/metadata", "CronJob annotation".to_string()),
        ],
        _ => vec![
            ("/spec/template/metadata", "annotation".to_string()),
            ("/metadata", format!("{kind} annotation")),
        ],
    }
}

/// The grace period the kubelet uses when the field is unset.
const DEFAULT_GRACE_SECONDS: u64 = 30;

/// Lines describing what changed from `before` to `after`, most important
/// first; "no change" when they are equal.
pub fn summarize(kind: &str, before: &Value, after: &Value) -> Vec<String> {
    if before == after {
        return vec!["no change".to_string()];
    }
    let spec_pointer = pod_spec_pointer(kind);
    let metadata = metadata_pointers(kind);
    let null = Value::Null;
    let spec_before = before.pointer(spec_pointer).unwrap_or(&null);
    let spec_after = after.pointer(spec_pointer).unwrap_or(&null);

    let mut lines = containers(spec_before, spec_after);
    let grace = "terminationGracePeriodSeconds";
    if spec_before.get(grace) != spec_after.get(grace) {
        lines.push(format!(
            "{grace} {} -> {}",
            grace_text(spec_before.get(grace)),
            grace_text(spec_after.get(grace))
        ));
    }
    for (pointer, label) in &metadata {
        lines.extend(annotations(
            before,
            after,
            &format!("{pointer}/annotations"),
            label,
        ));
    }

    // Anything else: named by the paths of its patch operations.
    let mut rest_before = before.clone();
    let mut rest_after = after.clone();
    for object in [&mut rest_before, &mut rest_after] {
        let summed_up = ["containers", "initContainers", grace]
            .map(|field| (spec_pointer, field))
            .into_iter()
            .chain(
                metadata
                    .iter()
                    .map(|(pointer, _)| (*pointer, "annotations")),
            );
        for (parent, field) in summed_up {
            if let Some(Value::Object(map)) = object.pointer_mut(parent) {
                map.remove(field);
            }
        }
    }
    let patch = json_patch::diff(&rest_before, &rest_after);
    if !patch.is_empty() {
        let mut paths: Vec<String> = patch
            .iter()
            .map(|operation| {
                serde_json::to_value(operation).unwrap_or_default()["path"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string()
            })
            .collect();
        paths.dedup();
        let more = paths.len().saturating_sub(5);
        paths.truncate(5);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        lines.push(format!("other changes: {}{more}", paths.join(", ")));
    }
    if lines.is_empty() {
        lines.push("changes in the patch below".to_string());
    }
    lines
}

fn grace_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => format!("unset ({DEFAULT_GRACE_SECONDS})"),
        Some(value) => scalar_text(value),
    }
}

/// A container list as (name, container) pairs; an entry without a name
/// is called by its index.
fn entries<'a>(spec: &'a Value, list: &str) -> Vec<(String, &'a Value)> {
    spec.get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, container)| {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{list}[{index}]"), str::to_string);
            (name, container)
        })
        .collect()
}

fn names(entries: &[(String, &Value)]) -> Vec<String> {
    entries.iter().map(|(name, _)| name.clone()).collect()
}

fn find<'a>(entries: &[(String, &'a Value)], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(entry, _)| entry == name)
        .map(|(_, container)| *container)
}

fn containers(spec_before: &Value, spec_after: &Value) -> Vec<String> {
    let init_before = entries(spec_before, "initContainers");
    let main_before = entries(spec_before, "containers");
    let init_after = entries(spec_after, "initContainers");
    let main_after = entries(spec_after, "containers");
    let is = |list: &[(String, &Value)], name: &str| find(list, name).is_some();

    let mut removed_or_added = Vec::new();
    let mut to_native = Vec::new();
    let mut to_init = Vec::new();
    let mut folded = Vec::new();
    let mut to_main = Vec::new();
    // (change, containers) in first-seen order.
    let mut field_changes: Vec<(String, Vec<String>)> = Vec::new();
    let mut note = |change: String, name: &str| match field_changes
        .iter_mut()
        .find(|(known, _)| *known == change)
    {
        Some((_, names)) => names.push(name.to_string()),
        None => field_changes.push((change, vec![name.to_string()])),
    };

    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in main_before.iter().chain(&init_before) {
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        let was_init = is(&init_before, name);
        let was_main = is(&main_before, name);
        let now_init = is(&init_after, name);
        let now_main = is(&main_after, name);
        // What the container is compared with: a re-applied sidecar (in both
        // lists of the request, only in initContainers after) is compared
        // with its containers entry, which replaces the initContainers one.
        let (old, new) = match (now_init, now_main) {
            (true, _) => (
                find(&main_before, name)
                    .filter(|_| !now_main)
                    .or_else(|| find(&init_before, name)),
                find(&init_after, name),
            ),
            (false, true) => (
                find(&init_before, name)
                    .filter(|_| !was_main)
                    .or_else(|| find(&main_before, name)),
                find(&main_after, name),
            ),
            (false, false) => (None, None),
        };
        let (Some(old), Some(new)) = (old, new) else {
            removed_or_added.push(format!("removed: {name}"));
            continue;
        };
        let mut changes = field_diff(old, new, "", 0);
        if was_main && !now_main && now_init {
            let native = new.get("restartPolicy") == Some(&Value::from("Always"));
            if native {
                changes.retain(|change| change != "restartPolicy: Always added");
            }
            if was_init {
                folded.push(name.clone());
            } else if native {
                to_native.push(name.clone());
            } else {
                to_init.push(name.clone());
            }
        } else if was_init && !was_main && now_main && !now_init {
            to_main.push(name.clone());
        }
        for change in changes {
            note(change, name);
        }
    }
    for (name, _) in init_after.iter().chain(&main_after) {
        if !is(&init_before, name) && !is(&main_before, name) {
            removed_or_added.push(format!("added: {name}"));
        }
    }

    let mut moves = Vec::new();
    if !to_native.is_empty() {
        moves.push(format!(
            "moved to initContainers (restartPolicy: Always): {}",
            to_native.join(", ")
        ));
    }
    if !to_init.is_empty() {
        moves.push(format!("moved to initContainers: {}", to_init.join(", ")));
    }
    for name in &folded {
        moves.push(format!("re-applied {name} folded into initContainers"));
    }
    if !to_main.is_empty() {
        moves.push(format!("moved to containers: {}", to_main.join(", ")));
    }
    let mut lines = moves;
    lines.append(&mut removed_or_added);
    if names(&init_before) != names(&init_after) || names(&main_before) != names(&main_after) {
        lines.push(format!(
            "initContainers now [{}]; containers now [{}]",
            names(&init_after).join(", "),
            names(&main_after).join(", ")
        ));
    }
    for (change, names) in field_changes {
        lines.push(format!("{change}: {}", names.join(", ")));
    }
    lines
}

/// The changes of one container's fields, e.g. "startupProbe added",
/// "lifecycle.type removed", "restartPolicy: Always added",
/// "terminationMessagePolicy: File -> FallbackToLogsOnError", "readinessProbe
/// changed". Objects are compared one level deep.
fn field_diff(old: &Value, new: &Value, prefix: &str, depth: usize) -> Vec<String> {
    let empty = Map::new();
    let old_map = old.as_object().unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    let mut changes = Vec::new();
    for (key, old_value) in old_map {
        match new_map.get(key) {
            None => changes.push(format!("{} removed", single_path(prefix, key, old_value))),
            Some(new_value) if new_value == old_value => {}
            Some(new_value) => match (old_value, new_value) {
                (Value::Object(_), Value::Object(_)) if depth == 0 => {
                    changes.extend(field_diff(old_value, new_value, &format!("{key}."), 1));
                }
                (Value::Object(_) | Value::Array(_), _)
                | (_, Value::Object(_) | Value::Array(_)) => {
                    changes.push(format!("{prefix}{key} changed"));
                }
                _ => changes.push(format!(
                    "{prefix}{key}: {} -> {}",
                    scalar_text(old_value),
                    scalar_text(new_value)
                )),
            },
        }
    }
    for (key, new_value) in new_map {
        if !old_map.contains_key(key) {
            if new_value.is_object() || new_value.is_array() {
                changes.push(format!("{} added", single_path(prefix, key, new_value)));
            } else {
                changes.push(format!("{prefix}{key}: {} added", scalar_text(new_value)));
            }
        }
    }
    changes
}

/// `prefix key`, or `prefix key.field` for an object of exactly one field
/// (a lifecycle that held only its type).
fn single_path(prefix: &str, key: &str, value: &Value) -> String {
    match value.as_object() {
        Some(map) if map.len() == 1 => {
            let (field, _) = map.iter().next().expect("one field");
            format!("{prefix}{key}.{field}")
        }
        _ => format!("{prefix}{key}"),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Annotations added, removed or rewritten at `pointer`, one line each.
fn annotations(before: &Value, after: &Value, pointer: &str, label: &str) -> Vec<String> {
    let empty = Map::new();
    let old = before
        .pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new = after
        .pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut lines = Vec::new();
    for (key, value) in old {
        match new.get(key) {
            None => lines.push(format!("{label} {key} removed")),
            Some(new_value) if new_value != value => {
                lines.push(format!("{label} {key} rewritten"));
            }
            Some(_) => {}
        }
    }
    for key in new.keys() {
        if !old.contains_key(key) {
            lines.push(format!("{label} {key} added"));
        }
    }
    lines
}
