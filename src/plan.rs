//! What the rules decide, and the one place that writes it into the object.
//! Rules only read the pod view and add to the plan; `apply` changes the raw
//! JSON in place, so every field the policy does not own stays as it came.

use serde_json::{Map, Value};

use crate::pod::List;

/// Warnings and violations, in the order the rules found them.
#[derive(Debug, Default)]
pub struct Findings {
    warnings: Vec<Warning>,
    pub violations: Vec<String>,
}

#[derive(Debug)]
struct Warning {
    text: String,
    /// Says what the policy changed: true only if the change is returned.
    reports_change: bool,
}

impl Findings {
    /// Something the user should know, whatever the verdict.
    pub fn warn(&mut self, text: String) {
        self.warnings.push(Warning {
            text,
            reports_change: false,
        });
    }

    /// A planned change; said only when the mutated object is returned.
    pub fn changed(&mut self, text: String) {
        self.warnings.push(Warning {
            text,
            reports_change: true,
        });
    }

    pub fn violation(&mut self, violation: String) {
        self.violations.push(violation);
    }

    pub fn warnings(&self) -> Vec<&str> {
        self.warnings
            .iter()
            .map(|warning| warning.text.as_str())
            .collect()
    }

    /// The warnings to send with the verdict: a rejected request changes
    /// nothing, so it is not told about changes.
    pub fn into_warnings(self, rejected: bool) -> Vec<String> {
        self.warnings
            .into_iter()
            .filter(|warning| !(rejected && warning.reports_change))
            .map(|warning| warning.text)
            .collect()
    }
}

/// Legacy sidecars to move from `spec.containers` to `spec.initContainers`.
#[derive(Debug, PartialEq, Eq)]
pub struct Conversion {
    /// Indices in `spec.containers`, ascending.
    pub moved: Vec<usize>,
    /// Where in the original `spec.initContainers` they go, in their order.
    pub insert_at: usize,
    /// Re-applied sidecars: (index in `spec.containers`, index of the native
    /// sidecar in `spec.initContainers` that it replaces).
    pub folded: Vec<(usize, usize)>,
}

/// An injector's record annotation to set to a new value.
#[derive(Debug, PartialEq, Eq)]
pub struct RecordRewrite {
    /// JSON pointer to the metadata holding the annotation.
    pub metadata: &'static str,
    pub key: String,
    pub value: String,
}

/// A startupProbe to add to the container at `list[index]` of the request.
#[derive(Debug)]
pub struct StartupProbe {
    pub list: List,
    pub index: usize,
    pub probe: Value,
}

/// Every change the rules planned for the pod spec.
#[derive(Debug, Default)]
pub struct Changes {
    pub conversion: Option<Conversion>,
    pub startup_probes: Vec<StartupProbe>,
    pub grace_period: Option<u64>,
    pub records: Vec<RecordRewrite>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.conversion.is_none()
            && self.startup_probes.is_empty()
            && self.grace_period.is_none()
            && self.records.is_empty()
    }

    /// Writes the changes into the object whose pod spec is at `pod_spec` (a
    /// JSON pointer) and removes `lifecycle.type` from every container, as a
    /// mutated object never carries the marker (SPEC §4).
    pub fn apply(self, object: &mut Value, pod_spec: &str) {
        for RecordRewrite {
            metadata,
            key,
            value,
        } in self.records
        {
            if let Some(Value::Object(annotations)) = object
                .pointer_mut(metadata)
                .and_then(|metadata| metadata.get_mut("annotations"))
            {
                annotations.insert(key, Value::String(value));
            }
        }
        let Some(Value::Object(spec)) = object.pointer_mut(pod_spec) else {
            return;
        };
        // Probes first: they address containers by their place in the request.
        for StartupProbe { list, index, probe } in self.startup_probes {
            if let Some(Value::Object(container)) =
                list_mut(spec, list).and_then(|list| list.get_mut(index))
            {
                container.insert("startupProbe".to_string(), probe);
            }
        }
        if let Some(conversion) = self.conversion {
            convert(spec, &conversion);
        }
        if let Some(seconds) = self.grace_period {
            spec.insert(
                "terminationGracePeriodSeconds".to_string(),
                Value::from(seconds),
            );
        }
        for list in [List::InitContainers, List::Containers] {
            for container in list_mut(spec, list).into_iter().flatten() {
                remove_lifecycle_type(container);
            }
        }
    }
}

fn list_mut(spec: &mut Map<String, Value>, list: List) -> Option<&mut Vec<Value>> {
    spec.get_mut(list.key()).and_then(Value::as_array_mut)
}

fn convert(spec: &mut Map<String, Value>, conversion: &Conversion) {
    let Some(containers) = list_mut(spec, List::Containers) else {
        return;
    };
    let mut destination = vec![Destination::Kept; containers.len()];
    for &index in &conversion.moved {
        if let Some(slot) = destination.get_mut(index) {
            *slot = Destination::Moved;
        }
    }
    for &(index, init_index) in &conversion.folded {
        if let Some(slot) = destination.get_mut(index) {
            *slot = Destination::Replaces(init_index);
        }
    }
    let mut moved = Vec::with_capacity(conversion.moved.len());
    let mut replacements = Vec::with_capacity(conversion.folded.len());
    let mut kept = Vec::with_capacity(containers.len());
    for (mut container, destination) in std::mem::take(containers).into_iter().zip(destination) {
        if destination != Destination::Kept
            && let Value::Object(fields) = &mut container
        {
            fields.insert("restartPolicy".to_string(), Value::from("Always"));
        }
        match destination {
            Destination::Kept => kept.push(container),
            Destination::Moved => moved.push(container),
            Destination::Replaces(init_index) => replacements.push((init_index, container)),
        }
    }
    *containers = kept;
    let init = spec
        .entry(List::InitContainers.key())
        .and_modify(|list| {
            if list.is_null() {
                *list = Value::Array(Vec::new());
            }
        })
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(init) = init {
        // Replacements keep every index, so the insertion point stays valid.
        for (init_index, container) in replacements {
            if let Some(slot) = init.get_mut(init_index) {
                *slot = container;
            }
        }
        let at = conversion.insert_at.min(init.len());
        init.splice(at..at, moved);
    }
}

/// Where an entry of `spec.containers` ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    Kept,
    /// Converted: inserted among the init containers.
    Moved,
    /// Re-applied: replaces the native sidecar at this index.
    Replaces(usize),
}

/// Drops `lifecycle.type`, and the `lifecycle` it leaves empty.
fn remove_lifecycle_type(container: &mut Value) {
    let Value::Object(fields) = container else {
        return;
    };
    let emptied = match fields.get_mut("lifecycle") {
        Some(Value::Object(lifecycle)) => {
            lifecycle.remove("type").is_some() && lifecycle.is_empty()
        }
        _ => false,
    };
    if emptied {
        fields.remove("lifecycle");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(spec: &Value, list: &str) -> Vec<String> {
        spec[list]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| c["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn conversion_moves_in_order_to_the_insertion_point() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "istio-init"}, {"name": "db-migrate"}],
            "containers": [{"name": "vault-agent"}, {"name": "app"}, {"name": "istio-proxy", "ports": [{"containerPort": 15090}]}]}});
        let changes = Changes {
            conversion: Some(Conversion {
                moved: vec![0, 2],
                insert_at: 1,
                folded: Vec::new(),
            }),
            ..Changes::default()
        };
        changes.apply(&mut pod, "/spec");
        assert_eq!(
            names(&pod["spec"], "initContainers"),
            ["istio-init", "vault-agent", "istio-proxy", "db-migrate"]
        );
        assert_eq!(names(&pod["spec"], "containers"), ["app"]);
        assert_eq!(
            pod["spec"]["initContainers"][2],
            json!({"name": "istio-proxy", "restartPolicy": "Always", "ports": [{"containerPort": 15090}]})
        );
        assert!(
            pod["spec"]["initContainers"][0]
                .get("restartPolicy")
                .is_none()
        );
    }

    #[test]
    fn conversion_creates_init_containers_when_absent_or_null() {
        for init in [None, Some(Value::Null)] {
            let mut pod = json!({"spec": {"containers": [{"name": "app"}, {"name": "daprd"}]}});
            if let Some(init) = init {
                pod["spec"]["initContainers"] = init;
            }
            Changes {
                conversion: Some(Conversion {
                    moved: vec![1],
                    insert_at: 0,
                    folded: Vec::new(),
                }),
                ..Changes::default()
            }
            .apply(&mut pod, "/spec");
            assert_eq!(names(&pod["spec"], "initContainers"), ["daprd"]);
        }
    }

    #[test]
    fn probes_address_containers_where_the_request_had_them() {
        let mut pod = json!({"spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}});
        Changes {
            conversion: Some(Conversion {
                moved: vec![1],
                insert_at: 0,
                folded: Vec::new(),
            }),
            startup_probes: vec![StartupProbe {
                list: List::Containers,
                index: 1,
                probe: json!({"tcpSocket": {"port": 15021}}),
            }],
            grace_period: Some(45),
            records: Vec::new(),
        }
        .apply(&mut pod, "/spec");
        assert_eq!(
            pod["spec"]["initContainers"][0]["startupProbe"],
            json!({"tcpSocket": {"port": 15021}})
        );
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], json!(45));
    }

    #[test]
    fn lifecycle_type_is_removed_and_an_emptied_lifecycle_with_it() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "lifecycle": {"type": "Standard"}},
            {"name": "b", "lifecycle": {"type": "Sidecar", "preStop": {"sleep": {"seconds": 5}}}},
            {"name": "c", "lifecycle": {}}]}});
        Changes {
            grace_period: Some(30),
            ..Changes::default()
        }
        .apply(&mut pod, "/spec");
        let containers = &pod["spec"]["containers"];
        assert_eq!(containers[0], json!({"name": "a"}));
        assert_eq!(
            containers[1],
            json!({"name": "b", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}})
        );
        assert_eq!(containers[2], json!({"name": "c", "lifecycle": {}}));
    }

    #[test]
    fn a_re_applied_sidecar_replaces_its_native_entry_in_place() {
        let mut pod = json!({"metadata": {"annotations": {"sidecar.istio.io/status": "old", "team": "shop"}},
            "spec": {
            "initContainers": [{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always", "image": "proxyv2:1"},
                {"name": "db-migrate"}],
            "containers": [{"name": "app"}, {"name": "istio-proxy", "image": "proxyv2:2"}, {"name": "daprd"}]}});
        Changes {
            conversion: Some(Conversion {
                moved: vec![2],
                insert_at: 2,
                folded: vec![(1, 1)],
            }),
            records: vec![RecordRewrite {
                metadata: "/metadata",
                key: "sidecar.istio.io/status".to_string(),
                value: "new".to_string(),
            }],
            ..Changes::default()
        }
        .apply(&mut pod, "/spec");
        assert_eq!(
            names(&pod["spec"], "initContainers"),
            ["istio-init", "istio-proxy", "daprd", "db-migrate"]
        );
        assert_eq!(names(&pod["spec"], "containers"), ["app"]);
        assert_eq!(
            pod["spec"]["initContainers"][1],
            json!({"name": "istio-proxy", "image": "proxyv2:2", "restartPolicy": "Always"})
        );
        assert_eq!(
            pod["metadata"]["annotations"],
            json!({"sidecar.istio.io/status": "new", "team": "shop"})
        );
    }
}
