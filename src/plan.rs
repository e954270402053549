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
    /// In `spec.containers` order: (index in `spec.containers`, position in
    /// `spec.initContainers` as the insertions before it leave the list).
    pub moved: Vec<(usize, usize)>,
    /// Re-applied sidecars.
    pub folded: Vec<Fold>,
}

/// A re-applied sidecar folded into the native sidecar it replaces.
#[derive(Debug, PartialEq, Eq)]
pub struct Fold {
    /// Index in `spec.containers`.
    pub container: usize,
    /// Index of the native sidecar in `spec.initContainers`.
    pub replaces: usize,
    /// volumeMounts of the replaced entry to append (SPEC §4: the
    /// service-account token mount the API server added at creation).
    pub kept_mounts: Vec<Value>,
}

/// An annotation to set: an injector's record rewritten, or a native switch
/// added (the annotations map is created when the metadata has none).
#[derive(Debug, PartialEq, Eq)]
pub struct SetAnnotation {
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
    /// Injectors' records kept true and native switches added.
    pub annotations: Vec<SetAnnotation>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.conversion.is_none()
            && self.startup_probes.is_empty()
            && self.grace_period.is_none()
            && self.annotations.is_empty()
    }

    /// Writes the changes into the object whose pod spec is at `pod_spec` (a
    /// JSON pointer) and removes `lifecycle.type` from every container, as a
    /// mutated object never carries the marker (SPEC §4).
    pub fn apply(self, object: &mut Value, pod_spec: &str) {
        // One pointer look-up per metadata (it allocates), not per annotation.
        let mut pending = self.annotations;
        while let Some(metadata) = pending.first().map(|first| first.metadata) {
            let (here, rest) = pending
                .into_iter()
                .partition::<Vec<_>, _>(|set| set.metadata == metadata);
            pending = rest;
            if let Some(annotations) = object.pointer_mut(metadata).and_then(annotations_mut) {
                for SetAnnotation { key, value, .. } in here {
                    annotations.insert(key, Value::String(value));
                }
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
            convert(spec, conversion);
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

/// The annotations of a metadata object, created when absent or `null`.
fn annotations_mut(metadata: &mut Value) -> Option<&mut Map<String, Value>> {
    let annotations = metadata
        .as_object_mut()?
        .entry("annotations")
        .or_insert(Value::Null);
    if annotations.is_null() {
        *annotations = Value::Object(Map::new());
    }
    annotations.as_object_mut()
}

fn list_mut(spec: &mut Map<String, Value>, list: List) -> Option<&mut Vec<Value>> {
    spec.get_mut(list.key()).and_then(Value::as_array_mut)
}

fn convert(spec: &mut Map<String, Value>, conversion: Conversion) {
    let Some(containers) = list_mut(spec, List::Containers) else {
        return;
    };
    let mut destination = vec![Destination::Kept; containers.len()];
    for &(index, at) in &conversion.moved {
        if let Some(slot) = destination.get_mut(index) {
            *slot = Destination::Moved(at);
        }
    }
    let mut kept_mounts = Vec::with_capacity(conversion.folded.len());
    for fold in conversion.folded {
        if let Some(slot) = destination.get_mut(fold.container) {
            *slot = Destination::Replaces(fold.replaces);
            kept_mounts.push((fold.container, fold.kept_mounts));
        }
    }
    for (index, mounts) in kept_mounts {
        if !mounts.is_empty()
            && let Some(Value::Object(container)) = containers.get_mut(index)
        {
            append_volume_mounts(container, mounts);
        }
    }
    let mut moved = Vec::with_capacity(conversion.moved.len());
    let mut replacements = Vec::new();
    let mut kept = Vec::with_capacity(containers.len());
    for (mut container, destination) in std::mem::take(containers).into_iter().zip(destination) {
        if destination != Destination::Kept
            && let Value::Object(fields) = &mut container
        {
            fields.insert("restartPolicy".to_string(), Value::from("Always"));
        }
        match destination {
            Destination::Kept => kept.push(container),
            Destination::Moved(at) => moved.push((at, container)),
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
        // Replacements keep every index, so the planned positions stay valid.
        for (init_index, container) in replacements {
            if let Some(slot) = init.get_mut(init_index) {
                *slot = container;
            }
        }
        // `moved` is in spec.containers order, the order positions were planned in.
        for (at, container) in moved {
            let at = at.min(init.len());
            init.insert(at, container);
        }
    }
}

/// Appends to a container's volumeMounts, creating the list when absent.
fn append_volume_mounts(container: &mut Map<String, Value>, mounts: Vec<Value>) {
    let list = container.entry("volumeMounts").or_insert(Value::Null);
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Value::Array(list) = list {
        list.extend(mounts);
    }
}

/// Where an entry of `spec.containers` ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    Kept,
    /// Converted: inserted among the init containers at this position.
    Moved(usize),
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
                moved: vec![(0, 1), (2, 2)],
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
                    moved: vec![(1, 0)],
                    folded: Vec::new(),
                }),
                ..Changes::default()
            }
            .apply(&mut pod, "/spec");
            assert_eq!(names(&pod["spec"], "initContainers"), ["daprd"]);
        }
    }

    #[test]
    fn each_sidecar_is_inserted_where_the_list_stands_after_the_ones_before() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "istio-init"}, {"name": "db-migrate"}, {"name": "vault-agent-init"}],
            "containers": [{"name": "app"}, {"name": "istio-proxy"}, {"name": "vault-agent"}]}});
        Changes {
            conversion: Some(Conversion {
                moved: vec![(1, 1), (2, 4)],
                folded: Vec::new(),
            }),
            ..Changes::default()
        }
        .apply(&mut pod, "/spec");
        assert_eq!(
            names(&pod["spec"], "initContainers"),
            [
                "istio-init",
                "istio-proxy",
                "db-migrate",
                "vault-agent-init",
                "vault-agent"
            ]
        );
    }

    #[test]
    fn an_annotation_is_set_even_where_the_metadata_has_none() {
        for metadata in [json!({}), json!({"annotations": null})] {
            let mut pod = json!({"metadata": metadata, "spec": {"containers": [{"name": "app"}]}});
            Changes {
                annotations: vec![SetAnnotation {
                    metadata: "/metadata",
                    key: "dapr.io/enable-native-sidecar".to_string(),
                    value: "true".to_string(),
                }],
                ..Changes::default()
            }
            .apply(&mut pod, "/spec");
            assert_eq!(
                pod["metadata"],
                json!({"annotations": {"dapr.io/enable-native-sidecar": "true"}})
            );
        }
    }

    #[test]
    fn probes_address_containers_where_the_request_had_them() {
        let mut pod = json!({"spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}});
        Changes {
            conversion: Some(Conversion {
                moved: vec![(1, 0)],
                folded: Vec::new(),
            }),
            startup_probes: vec![StartupProbe {
                list: List::Containers,
                index: 1,
                probe: json!({"tcpSocket": {"port": 15021}}),
            }],
            grace_period: Some(45),
            annotations: Vec::new(),
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
                moved: vec![(2, 2)],
                folded: vec![Fold {
                    container: 1,
                    replaces: 1,
                    kept_mounts: vec![json!({"name": "kube-api-access-x", "mountPath": "/t"})],
                }],
            }),
            annotations: vec![SetAnnotation {
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
            json!({"name": "istio-proxy", "image": "proxyv2:2", "restartPolicy": "Always",
                "volumeMounts": [{"name": "kube-api-access-x", "mountPath": "/t"}]})
        );
        assert_eq!(
            pod["metadata"]["annotations"],
            json!({"sidecar.istio.io/status": "new", "team": "shop"})
        );
    }
}
