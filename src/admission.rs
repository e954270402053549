//! SPEC §2: which requests the policy evaluates, where the pod spec of each
//! kind lives, and the skip rules that accept a request untouched.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

/// The part of a Kubernetes AdmissionRequest the policy reads; serde skips
/// the rest (uid, userInfo, options...) without building it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub kind: GroupVersionKind,
    pub operation: String,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub object: Value,
    #[serde(default)]
    pub old_object: Value,
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    pub kind: String,
}

/// A kind whose objects carry a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub kind: &'static str,
    /// JSON pointer to the pod template (`metadata` + `spec`); empty for a
    /// Pod, whose own metadata and spec play that part.
    pub template: &'static str,
    /// JSON pointer to the pod spec.
    pub pod_spec: &'static str,
    /// JSON pointer to the metadata whose annotations are "the pod's".
    pub pod_metadata: &'static str,
    /// A CronJob's job template metadata, where `istioctl kube-inject`
    /// writes its injection record (SPEC §3.1).
    pub job_template_metadata: Option<&'static str>,
}

impl Workload {
    pub fn is_pod(&self) -> bool {
        self.kind == "Pod"
    }

    /// Jobs and CronJobs run to completion, so a sidecar left as a regular
    /// container keeps them from ever completing.
    pub fn runs_to_completion(&self) -> bool {
        matches!(self.kind, "Job" | "CronJob")
    }
}

const fn workload(
    kind: &'static str,
    template: &'static str,
    pod_spec: &'static str,
    pod_metadata: &'static str,
) -> Workload {
    Workload {
        kind,
        template,
        pod_spec,
        pod_metadata,
        job_template_metadata: None,
    }
}

/// A Pod: its own metadata and spec play the part of the pod template.
pub const POD: Workload = workload("Pod", "", "/spec", "/metadata");

/// The one table of kinds: API group, kind, and where the pod lives.
const WORKLOADS: &[(&str, Workload)] = &[
    ("", POD),
    (
        "",
        workload(
            "ReplicationController",
            "/spec/template",
            "/spec/template/spec",
            "/spec/template/metadata",
        ),
    ),
    (
        "apps",
        workload(
            "Deployment",
            "/spec/template",
            "/spec/template/spec",
            "/spec/template/metadata",
        ),
    ),
    (
        "apps",
        workload(
            "ReplicaSet",
            "/spec/template",
            "/spec/template/spec",
            "/spec/template/metadata",
        ),
    ),
    (
        "apps",
        workload(
            "StatefulSet",
            "/spec/template",
            "/spec/template/spec",
            "/spec/template/metadata",
        ),
    ),
    (
        "apps",
        workload(
            "DaemonSet",
            "/spec/template",
            "/spec/template/spec",
            "/spec/template/metadata",
        ),
    ),
    (
        "batch",
        workload(
            "Job",
            "/spec/template",
            "/spec/template/spec",
            "/spec/template/metadata",
        ),
    ),
    (
        "batch",
        Workload {
            job_template_metadata: Some("/spec/jobTemplate/metadata"),
            ..workload(
                "CronJob",
                "/spec/jobTemplate/spec/template",
                "/spec/jobTemplate/spec/template/spec",
                "/spec/jobTemplate/spec/template/metadata",
            )
        },
    ),
];

/// The workload a request's kind names, or `None` for any other kind
/// (a ConfigMap, a CRD that happens to be called `Deployment`).
pub fn workload_of(kind: &GroupVersionKind) -> Option<Workload> {
    WORKLOADS
        .iter()
        .find(|(group, workload)| *group == kind.group && workload.kind == kind.kind)
        .map(|(_, workload)| *workload)
}

/// Why a request is accepted without being evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotAWorkload,
    SubResource,
    /// Pod UPDATE (without re-applied sidecars), any DELETE or CONNECT.
    Operation,
    /// A workload managed by a controller: its owner is the source of truth.
    ControlledWorkload,
    /// A mirror Pod, owned by the kubelet.
    MirrorPod,
    /// A Job's pod template is immutable; its pods are handled on creation.
    JobUpdate,
    /// An UPDATE that leaves the pod template as it was.
    TemplateUnchanged,
}

/// How a request the policy evaluates came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    /// An UPDATE: a merge of a manifest into the stored object, so a sidecar
    /// may be re-applied (SPEC §4).
    Update,
    /// An UPDATE of a Job or Pod with re-applied sidecars. Their pod spec is
    /// immutable but for what the API server allows: the policy only folds
    /// the sidecars back (`convert` mode) and leaves the rest to it.
    ImmutableUpdate,
}

impl Operation {
    pub fn is_update(self) -> bool {
        self != Operation::Create
    }
}

/// Decides whether the request is one the policy evaluates: `Ok` with the
/// workload and operation when it is, `Err` with the reason it is accepted
/// untouched. These rules come before any check of the object's shape.
pub fn applicable(request: &AdmissionRequest) -> Result<(Workload, Operation), Skip> {
    let workload = workload_of(&request.kind).ok_or(Skip::NotAWorkload)?;
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|sub| !sub.is_empty())
    {
        return Err(Skip::SubResource);
    }
    if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return Err(Skip::Operation);
    }
    if workload.is_pod() {
        if is_mirror_pod(&request.object) {
            return Err(Skip::MirrorPod);
        }
    } else if has_controller(&request.object) {
        return Err(Skip::ControlledWorkload);
    }
    if request.operation == "CREATE" {
        return Ok((workload, Operation::Create));
    }
    if workload.is_pod() || workload.kind == "Job" {
        if has_reapplied_sidecars(&request.object, workload.pod_spec) {
            return Ok((workload, Operation::ImmutableUpdate));
        }
        return Err(if workload.is_pod() {
            Skip::Operation
        } else {
            Skip::JobUpdate
        });
    }
    if !request.old_object.is_null()
        && request.object.pointer(workload.template)
            == request.old_object.pointer(workload.template)
    {
        return Err(Skip::TemplateUnchanged);
    }
    Ok((workload, Operation::Update))
}

/// Whether a name of `containers` is also the name of a native sidecar of
/// `initContainers`: what merging a pre-conversion manifest into a converted
/// object produces. A cheap look that trusts nothing about the shape.
fn has_reapplied_sidecars(object: &Value, pod_spec: &str) -> bool {
    let names = |list: &str, native_only: bool| -> Vec<&str> {
        object
            .pointer(pod_spec)
            .and_then(|spec| spec.get(list))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|container| {
                !native_only
                    || container.get("restartPolicy").and_then(Value::as_str) == Some("Always")
            })
            .filter_map(|container| container.get("name").and_then(Value::as_str))
            .collect()
    };
    let native: HashSet<&str> = names("initContainers", true).into_iter().collect();
    !native.is_empty()
        && names("containers", false)
            .iter()
            .any(|name| native.contains(name))
}

fn has_controller(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|owner| owner.get("controller") == Some(&Value::Bool(true)))
        })
}

fn is_mirror_pod(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|annotations| annotations.contains_key("kubernetes.io/config.mirror"))
}

/// "Owned by a Job": an owner reference of kind `Job` in API group `batch`.
pub fn is_owned_by_job(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners.iter().any(|owner| {
                owner.get("kind").and_then(Value::as_str) == Some("Job")
                    && owner
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .is_some_and(|version| version.starts_with("batch/"))
            })
        })
}

/// `/spec/template/spec` -> `spec.template.spec`, the form messages use.
pub fn field_path(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(
        kind: (&str, &str),
        operation: &str,
        object: Value,
        old_object: Value,
    ) -> AdmissionRequest {
        serde_json::from_value(json!({
            "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
            "operation": operation,
            "object": object,
            "oldObject": old_object,
        }))
        .unwrap()
    }

    fn deployment(image: &str) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1,
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn every_workload_kind_has_its_pod_spec_pointer() {
        let pointer = |group: &str, kind: &str| {
            workload_of(&GroupVersionKind {
                group: group.into(),
                kind: kind.into(),
            })
            .map(|w| w.pod_spec)
        };
        assert_eq!(pointer("", "Pod"), Some("/spec"));
        assert_eq!(pointer("apps", "Deployment"), Some("/spec/template/spec"));
        assert_eq!(
            pointer("batch", "CronJob"),
            Some("/spec/jobTemplate/spec/template/spec")
        );
        assert_eq!(
            pointer("", "ReplicationController"),
            Some("/spec/template/spec")
        );
        assert_eq!(pointer("example.com", "Deployment"), None);
        assert_eq!(pointer("", "ConfigMap"), None);
    }

    #[test]
    fn pods_are_evaluated_on_create_and_deletes_never() {
        let pod = json!({"kind": "Pod", "spec": {}});
        assert!(applicable(&request(("", "Pod"), "CREATE", pod.clone(), Value::Null)).is_ok());
        assert_eq!(
            applicable(&request(("", "Pod"), "UPDATE", pod.clone(), pod)),
            Err(Skip::Operation)
        );
        assert_eq!(
            applicable(&request(
                ("apps", "Deployment"),
                "DELETE",
                Value::Null,
                deployment("a")
            )),
            Err(Skip::Operation)
        );
    }

    #[test]
    fn workload_update_is_evaluated_only_when_the_template_changes() {
        let mut scaled = deployment("web:1");
        scaled["spec"]["replicas"] = json!(5);
        let same = request(
            ("apps", "Deployment"),
            "UPDATE",
            scaled,
            deployment("web:1"),
        );
        assert_eq!(applicable(&same), Err(Skip::TemplateUnchanged));
        let changed = request(
            ("apps", "Deployment"),
            "UPDATE",
            deployment("web:2"),
            deployment("web:1"),
        );
        assert_eq!(
            applicable(&changed).map(|(_, operation)| operation),
            Ok(Operation::Update)
        );
    }

    #[test]
    fn job_updates_are_evaluated_only_with_re_applied_sidecars() {
        let job = json!({"kind": "Job", "spec": {"template": {"spec": {"containers": []}}}});
        let update = request(
            ("batch", "Job"),
            "UPDATE",
            job.clone(),
            json!({"kind": "Job"}),
        );
        assert_eq!(applicable(&update), Err(Skip::JobUpdate));
        let merged = json!({"kind": "Job", "spec": {"template": {"spec": {
            "initContainers": [{"name": "cloud-sql-proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "migrate"}, {"name": "cloud-sql-proxy"}]}}}});
        let update = request(("batch", "Job"), "UPDATE", merged, job);
        assert_eq!(
            applicable(&update).map(|(_, operation)| operation),
            Ok(Operation::ImmutableUpdate)
        );
    }

    #[test]
    fn a_pod_update_is_evaluated_only_with_re_applied_sidecars() {
        let merged = json!({"kind": "Pod", "spec": {
            "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}, {"name": "istio-proxy"}]}});
        let update = request(("", "Pod"), "UPDATE", merged.clone(), json!({}));
        assert_eq!(
            applicable(&update).map(|(_, operation)| operation),
            Ok(Operation::ImmutableUpdate)
        );
        // the same name on a regular init container is no re-applied sidecar
        let mut regular_init = merged;
        regular_init["spec"]["initContainers"][0]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let update = request(("", "Pod"), "UPDATE", regular_init, json!({}));
        assert_eq!(applicable(&update), Err(Skip::Operation));
    }

    #[test]
    fn controlled_workloads_and_mirror_pods_are_skipped_even_when_malformed() {
        let owned = json!({"metadata": {"ownerReferences": [{"kind": "Deployment", "controller": true}]}, "spec": 7});
        assert_eq!(
            applicable(&request(
                ("apps", "ReplicaSet"),
                "CREATE",
                owned.clone(),
                Value::Null
            )),
            Err(Skip::ControlledWorkload)
        );
        // A Pod with a controller is still evaluated: that is where conversion happens.
        assert!(applicable(&request(("", "Pod"), "CREATE", owned, Value::Null)).is_ok());
        let mirror = json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "abc"}}});
        assert_eq!(
            applicable(&request(("", "Pod"), "CREATE", mirror, Value::Null)),
            Err(Skip::MirrorPod)
        );
    }

    #[test]
    fn subresource_requests_are_skipped() {
        let mut scale = request(("apps", "Deployment"), "UPDATE", json!({}), json!({}));
        scale.sub_resource = Some("scale".into());
        assert_eq!(applicable(&scale), Err(Skip::SubResource));
    }

    #[test]
    fn job_ownership_needs_the_batch_group() {
        assert!(is_owned_by_job(
            &json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job"}]}})
        ));
        assert!(!is_owned_by_job(
            &json!({"metadata": {"ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Job"}]}})
        ));
    }
}
