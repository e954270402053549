//! A read-only view over the raw pod spec JSON: the containers of both
//! lists, the pod's annotations and its grace period, checked for the shapes
//! SPEC §8 calls malformed. Nothing is copied out of the object.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::admission::{Workload, field_path, is_owned_by_job};

/// The termination grace period Kubernetes applies when none is set.
pub const DEFAULT_GRACE_SECONDS: u64 = 30;

/// The largest number of seconds Kubernetes stores (an int64).
pub const MAX_SECONDS: u64 = i64::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Containers,
    InitContainers,
}

impl List {
    pub fn key(self) -> &'static str {
        match self {
            List::Containers => "containers",
            List::InitContainers => "initContainers",
        }
    }
}

/// One entry of `containers` or `initContainers`, where it was found.
#[derive(Debug, Clone, Copy)]
pub struct Container<'a> {
    pub list: List,
    pub index: usize,
    pub name: &'a str,
    pub fields: &'a Map<String, Value>,
}

impl<'a> Container<'a> {
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.fields.get(field).filter(|value| !value.is_null())
    }

    pub fn image(&self) -> Option<&'a str> {
        self.get("image").and_then(Value::as_str)
    }

    /// `lifecycle.type`, the KEP-753 marker (`Sidecar` or `Standard`).
    pub fn lifecycle_type(&self) -> Option<&'a str> {
        self.get("lifecycle")?.get("type")?.as_str()
    }

    /// An init container with `restartPolicy: Always` (exact string).
    pub fn is_native_sidecar(&self) -> bool {
        self.list == List::InitContainers
            && self.get("restartPolicy").and_then(Value::as_str) == Some("Always")
    }

    /// Kubernetes 1.34 lets any container choose its own restart behaviour;
    /// such a container is the user's decision and is never moved.
    pub fn sets_own_restart_policy(&self) -> bool {
        self.get("restartPolicy").is_some() || self.get("restartPolicyRules").is_some()
    }

    pub fn hook(&self, hook: &str) -> Option<&'a Value> {
        self.get("lifecycle")?
            .get(hook)
            .filter(|value| !value.is_null())
    }

    /// The string arguments of `args`, up to the first that is not a string.
    pub fn args(&self) -> impl Iterator<Item = &'a str> {
        self.words("args")
    }

    /// The strings of `command`, up to the first that is not a string.
    pub fn command(&self) -> impl Iterator<Item = &'a str> {
        self.words("command")
    }

    fn words(&self, field: &str) -> impl Iterator<Item = &'a str> {
        self.get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map_while(Value::as_str)
    }

    /// The literal `value` of the env variable `name` (not `valueFrom`).
    pub fn env_value(&self, name: &str) -> Option<&'a str> {
        self.get("env")?
            .as_array()?
            .iter()
            .find(|variable| variable.get("name").and_then(Value::as_str) == Some(name))?
            .get("value")?
            .as_str()
    }
}

/// A sidecar re-applied by a merge (SPEC §4): an entry of `containers` with
/// the name of a native sidecar of `initContainers`. Whether it is folded or
/// stays a malformed duplicate is the conversion rule's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reapplied {
    /// Index in `containers`.
    pub container: usize,
    /// Index of the native sidecar in `initContainers`.
    pub init_container: usize,
    /// The duplicate name, as §8 reports it when it is not folded.
    pub duplicate: Malformed,
}

/// A field of the object with the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

#[derive(Debug)]
pub struct PodView<'a> {
    /// `spec.template.spec` and the like, for messages.
    pub spec_path: String,
    pub containers: Vec<Container<'a>>,
    pub init_containers: Vec<Container<'a>>,
    /// `spec.volumes` (empty when absent or not a list).
    pub volumes: &'a [Value],
    annotations: Option<&'a Map<String, Value>>,
    /// The pod (template)'s labels.
    labels: Option<&'a Map<String, Value>>,
    /// Where injectors mark a pod: the pod (template)'s annotations and a
    /// CronJob's job template's, each with the JSON pointer of its metadata.
    marking_annotations: Vec<(&'static str, &'a Map<String, Value>)>,
    /// Every container of both lists by name; for a re-applied sidecar, its
    /// entry of `containers`.
    by_name: HashMap<&'a str, Container<'a>>,
    /// Names both in `containers` and native sidecars of `initContainers`.
    pub reapplied: Vec<Reapplied>,
    /// `None` when absent or `null`: the API default applies.
    pub grace_period: Option<u64>,
    /// A Job's or CronJob's template, or a Pod owned by a Job.
    pub runs_to_completion: bool,
}

impl<'a> PodView<'a> {
    /// Reads the pod of `object`, reporting every malformed field found.
    pub fn read(object: &'a Value, workload: Workload) -> Result<PodView<'a>, Vec<Malformed>> {
        let spec_path = field_path(workload.pod_spec);
        let spec = match object.pointer(workload.pod_spec) {
            Some(Value::Object(spec)) => spec,
            Some(_) => return Err(vec![malformed(&spec_path, "must be an object")]),
            None => {
                return Err(vec![malformed(
                    &spec_path,
                    format!("missing: a {} needs its pod spec", workload.kind),
                )]);
            }
        };
        let mut problems = Vec::new();
        let containers = read_list(spec, List::Containers, &spec_path, &mut problems);
        let init_containers = read_list(spec, List::InitContainers, &spec_path, &mut problems);
        let (by_name, reapplied) =
            index_by_name(&containers, &init_containers, &spec_path, &mut problems);
        let metadata = object.pointer(workload.pod_metadata);
        let annotations = read_annotations(metadata, workload, &mut problems);
        let labels = metadata
            .and_then(|metadata| metadata.get("labels"))
            .and_then(Value::as_object);
        let job_template = workload.job_template_metadata.and_then(|pointer| {
            Some((
                pointer,
                object.pointer(pointer)?.get("annotations")?.as_object()?,
            ))
        });
        let marking_annotations = annotations
            .map(|pod| (workload.pod_metadata, pod))
            .into_iter()
            .chain(job_template)
            .collect();
        let grace_period = read_grace_period(spec, &spec_path, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(PodView {
            spec_path,
            containers,
            init_containers,
            volumes: spec
                .get("volumes")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice),
            annotations,
            labels,
            marking_annotations,
            by_name,
            reapplied,
            grace_period,
            runs_to_completion: workload.runs_to_completion()
                || (workload.is_pod() && is_owned_by_job(object)),
        })
    }

    pub fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations?.get(key)?.as_str()
    }

    /// Whether the pod (template) has the annotation `key`, whatever its value.
    pub fn has_annotation(&self, key: &str) -> bool {
        self.annotations
            .is_some_and(|annotations| annotations.contains_key(key))
    }

    /// The names a pod annotation lists: comma-separated, white space
    /// trimmed, empty entries skipped (repeats are the caller's business).
    pub fn annotation_names(&self, key: &str) -> impl Iterator<Item = &'a str> {
        self.annotation(key)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
    }

    /// Whether the pod (template) carries the label `key`, whatever its value.
    pub fn has_label(&self, key: &str) -> bool {
        self.labels.is_some_and(|labels| labels.contains_key(key))
    }

    /// Whether annotation `key` is on the pod (template) or, for a CronJob,
    /// on its job template: where injectors mark a pod as injected.
    pub fn is_marked(&self, key: &str) -> bool {
        self.marking_annotations
            .iter()
            .any(|(_, annotations)| annotations.contains_key(key))
    }

    /// The JSON pointers of the metadata whose annotation `key` is a string:
    /// the pod (template)'s and a CronJob's job template's.
    pub fn marked_annotations(&self, key: &str) -> Vec<(&'static str, &'a str)> {
        self.marking_annotations
            .iter()
            .filter_map(|(pointer, annotations)| Some((*pointer, annotations.get(key)?.as_str()?)))
            .collect()
    }

    /// The container of either list with this name, found without a scan.
    pub fn container_named(&self, name: &str) -> Option<&Container<'a>> {
        self.by_name.get(name)
    }

    /// Where a container sits, for messages: `spec.containers[1] (istio-proxy)`.
    pub fn locate(&self, container: &Container) -> String {
        format!(
            "{}.{}[{}] ({})",
            self.spec_path,
            container.list.key(),
            container.index,
            container.name
        )
    }

    /// Every container of both lists, init containers first.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container<'a>> {
        self.init_containers.iter().chain(&self.containers)
    }
}

fn malformed(path: &str, problem: impl Into<String>) -> Malformed {
    Malformed {
        path: path.to_string(),
        problem: problem.into(),
    }
}

fn read_list<'a>(
    spec: &'a Map<String, Value>,
    list: List,
    spec_path: &str,
    problems: &mut Vec<Malformed>,
) -> Vec<Container<'a>> {
    let path = format!("{spec_path}.{}", list.key());
    let entries = match (list, spec.get(list.key())) {
        (_, Some(Value::Array(entries))) if !entries.is_empty() || list == List::InitContainers => {
            entries
        }
        (List::InitContainers, None | Some(Value::Null)) => return Vec::new(),
        (List::InitContainers, Some(_)) => {
            problems.push(malformed(&path, "must be a list of containers"));
            return Vec::new();
        }
        (List::Containers, None | Some(Value::Null)) => {
            problems.push(malformed(
                &path,
                "missing: a pod needs at least one container",
            ));
            return Vec::new();
        }
        (List::Containers, Some(Value::Array(_))) => {
            problems.push(malformed(
                &path,
                "is empty: a pod needs at least one container",
            ));
            return Vec::new();
        }
        (List::Containers, Some(_)) => {
            problems.push(malformed(&path, "must be a list of containers"));
            return Vec::new();
        }
    };
    let mut containers = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Value::Object(fields) = entry else {
            problems.push(malformed(&format!("{path}[{index}]"), "must be an object"));
            continue;
        };
        match fields.get("name") {
            Some(Value::String(name)) if !name.is_empty() => containers.push(Container {
                list,
                index,
                name,
                fields,
            }),
            Some(Value::String(_)) => problems.push(malformed(
                &format!("{path}[{index}].name"),
                "must not be empty",
            )),
            _ => problems.push(malformed(
                &format!("{path}[{index}].name"),
                "must be a string",
            )),
        }
    }
    containers
}

/// Indexes the containers of both lists by name, checking that names are
/// unique across both lists, as the API server requires: the policy moves
/// containers between them and finds them by name. A name of `containers`
/// that is also a native sidecar's is set aside as possibly re-applied.
fn index_by_name<'a>(
    containers: &[Container<'a>],
    init_containers: &[Container<'a>],
    spec_path: &str,
    problems: &mut Vec<Malformed>,
) -> (HashMap<&'a str, Container<'a>>, Vec<Reapplied>) {
    let mut by_name = HashMap::with_capacity(containers.len() + init_containers.len());
    let mut reapplied = Vec::new();
    for container in init_containers.iter().chain(containers) {
        let Some(first) = by_name.insert(container.name, *container) else {
            continue;
        };
        let duplicate = malformed(
            &format!(
                "{spec_path}.{}[{}].name",
                container.list.key(),
                container.index
            ),
            format!(
                "{:?} is already the name of {spec_path}.{}[{}]",
                container.name,
                first.list.key(),
                first.index
            ),
        );
        if container.list == List::Containers && first.is_native_sidecar() {
            reapplied.push(Reapplied {
                container: container.index,
                init_container: first.index,
                duplicate,
            });
        } else {
            problems.push(duplicate);
        }
    }
    (by_name, reapplied)
}

/// The annotations of the pod (template) `metadata`, checked to be strings.
fn read_annotations<'a>(
    metadata: Option<&'a Value>,
    workload: Workload,
    problems: &mut Vec<Malformed>,
) -> Option<&'a Map<String, Value>> {
    let path = || format!("{}.annotations", field_path(workload.pod_metadata));
    let annotations = match metadata?.get("annotations")? {
        Value::Object(annotations) => annotations,
        Value::Null => return None,
        _ => {
            problems.push(malformed(&path(), "must be a map of strings"));
            return None;
        }
    };
    for (key, value) in annotations {
        if !value.is_string() {
            problems.push(malformed(
                &format!("{}[{key:?}]", path()),
                format!("must be a string, got {value}"),
            ));
        }
    }
    Some(annotations)
}

fn read_grace_period(
    spec: &Map<String, Value>,
    spec_path: &str,
    problems: &mut Vec<Malformed>,
) -> Option<u64> {
    let value = spec
        .get("terminationGracePeriodSeconds")
        .filter(|value| !value.is_null())?;
    match value
        .as_u64()
        // `-0` is the integer 0, as the API server reads it
        .or_else(|| (value.as_i64() == Some(0)).then_some(0))
        .filter(|seconds| *seconds <= MAX_SECONDS)
    {
        Some(seconds) => Some(seconds),
        None => {
            problems.push(malformed(
                &format!("{spec_path}.terminationGracePeriodSeconds"),
                format!("must be a non-negative integer, got {value}"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{GroupVersionKind, workload_of};
    use serde_json::json;

    fn workload(kind: &str) -> Workload {
        let group = match kind {
            "Pod" | "ReplicationController" => "",
            "Job" | "CronJob" => "batch",
            _ => "apps",
        };
        workload_of(&GroupVersionKind {
            group: group.into(),
            kind: kind.into(),
        })
        .unwrap()
    }

    fn problems(object: Value) -> Vec<String> {
        PodView::read(&object, workload("Pod"))
            .map(|_| Vec::new())
            .unwrap_or_else(|problems| problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn reads_both_lists_annotations_and_grace_period() {
        let object = json!({"metadata": {"annotations": {"a": "b"}}, "spec": {
            "terminationGracePeriodSeconds": 45,
            "initContainers": [{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "app:1"}]}});
        let view = PodView::read(&object, workload("Pod")).unwrap();
        assert_eq!(view.init_containers.len(), 2);
        assert!(view.init_containers[1].is_native_sidecar());
        assert!(!view.init_containers[0].is_native_sidecar());
        assert_eq!(view.containers[0].image(), Some("app:1"));
        assert_eq!(view.annotation("a"), Some("b"));
        assert_eq!(view.grace_period, Some(45));
        assert_eq!(view.locate(&view.containers[0]), "spec.containers[0] (app)");
    }

    #[test]
    fn only_the_exact_string_always_makes_a_native_sidecar() {
        let object = json!({"spec": {"initContainers": [{"name": "a", "restartPolicy": "always"}, {"name": "b", "restartPolicy": "OnFailure"}],
            "containers": [{"name": "app"}]}});
        let view = PodView::read(&object, workload("Pod")).unwrap();
        assert!(view.init_containers.iter().all(|c| !c.is_native_sidecar()));
    }

    #[test]
    fn workloads_read_the_template_annotations_not_their_own() {
        let object = json!({"metadata": {"annotations": {"k": "workload"}}, "spec": {"template": {
            "metadata": {"annotations": {"k": "template"}}, "spec": {"containers": [{"name": "app"}]}}}});
        let view = PodView::read(&object, workload("Deployment")).unwrap();
        assert_eq!(view.annotation("k"), Some("template"));
        assert_eq!(view.spec_path, "spec.template.spec");
    }

    #[test]
    fn jobs_and_pods_owned_by_jobs_run_to_completion() {
        let job = json!({"spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}});
        assert!(
            PodView::read(&job, workload("Job"))
                .unwrap()
                .runs_to_completion
        );
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}}});
        assert!(
            PodView::read(&cron, workload("CronJob"))
                .unwrap()
                .runs_to_completion
        );
        let pod = json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "controller": true}]},
            "spec": {"containers": [{"name": "app"}]}});
        assert!(
            PodView::read(&pod, workload("Pod"))
                .unwrap()
                .runs_to_completion
        );
        assert!(
            !PodView::read(&job, workload("Deployment"))
                .unwrap()
                .runs_to_completion
        );
    }

    #[test]
    fn a_missing_pod_spec_names_its_path() {
        let object = json!({"spec": {"template": {"metadata": {}}}});
        let problems = PodView::read(&object, workload("CronJob")).unwrap_err();
        assert_eq!(problems[0].path, "spec.jobTemplate.spec.template.spec");
    }

    #[test]
    fn malformed_container_lists_are_reported_with_their_paths() {
        assert_eq!(
            problems(json!({"spec": {}})),
            ["spec.containers: missing: a pod needs at least one container"]
        );
        assert_eq!(
            problems(json!({"spec": {"containers": null}})),
            ["spec.containers: missing: a pod needs at least one container"]
        );
        assert_eq!(
            problems(json!({"spec": {"containers": []}})),
            ["spec.containers: is empty: a pod needs at least one container"]
        );
        assert_eq!(
            problems(json!({"spec": {"containers": {"name": "app"}}})),
            ["spec.containers: must be a list of containers"]
        );
        assert_eq!(
            problems(json!({"spec": {"containers": [{"name": "app"}], "initContainers": "x"}})),
            ["spec.initContainers: must be a list of containers"]
        );
        assert!(
            problems(json!({"spec": {"containers": [{"name": "app"}], "initContainers": null}}))
                .is_empty()
        );
    }

    #[test]
    fn malformed_containers_are_all_reported() {
        let found = problems(
            json!({"spec": {"containers": [7, {"image": "x"}, {"name": ""}, {"name": 3}]}}),
        );
        assert_eq!(
            found,
            [
                "spec.containers[0]: must be an object",
                "spec.containers[1].name: must be a string",
                "spec.containers[2].name: must not be empty",
                "spec.containers[3].name: must be a string",
            ]
        );
    }

    #[test]
    fn duplicate_names_across_lists_are_reported() {
        let found = problems(
            json!({"spec": {"initContainers": [{"name": "app"}], "containers": [{"name": "app"}]}}),
        );
        assert_eq!(
            found,
            ["spec.containers[0].name: \"app\" is already the name of spec.initContainers[0]"]
        );
    }

    #[test]
    fn annotation_values_must_be_strings() {
        let found = problems(
            json!({"metadata": {"annotations": {"prometheus.io/port": 9090}}, "spec": {"containers": [{"name": "app"}]}}),
        );
        assert_eq!(
            found,
            ["metadata.annotations[\"prometheus.io/port\"]: must be a string, got 9090"]
        );
    }

    #[test]
    fn grace_period_must_be_a_non_negative_integer_or_null() {
        let with = |tgps: &str| {
            let text = format!(
                r#"{{"spec": {{"terminationGracePeriodSeconds": {tgps}, "containers": [{{"name": "app"}}]}}}}"#
            );
            problems(serde_json::from_str(&text).unwrap())
        };
        assert!(with("null").is_empty());
        assert!(with("0").is_empty());
        assert!(with("-0").is_empty());
        assert_eq!(
            with("30.0"),
            ["spec.terminationGracePeriodSeconds: must be a non-negative integer, got 30.0"]
        );
        assert_eq!(with("-1").len(), 1);
        assert_eq!(with("\"30\"").len(), 1);
        assert_eq!(with("99999999999999999999999").len(), 1);
    }
}
