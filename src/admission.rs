//! SPEC §2: which requests the policy evaluates, where the pod spec of each
//! kind lives, and the skip rules that accept a request untouched.

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
        workload(
            "CronJob",
            "/spec/jobTemplate/spec/template",
            "/spec/jobTemplate/spec/template/spec",
            "/spec/jobTemplate/spec/template/metadata",
        ),
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
    /// Pod UPDATE, any DELETE or CONNECT.
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

/// Decides whether the request is one the policy evaluates: `Ok` with the
/// workload when it is, `Err` with the reason it is accepted untouched.
/// These rules come before any check of the object's shape.
pub fn applicable(request: &AdmissionRequest) -> Result<Workload, Skip> {
    let workload = workload_of(&request.kind).ok_or(Skip::NotAWorkload)?;
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|sub| !sub.is_empty())
    {
        return Err(Skip::SubResource);
    }
    let is_update = match request.operation.as_str() {
        "CREATE" => false,
        "UPDATE" if !workload.is_pod() => true,
        _ => return Err(Skip::Operation),
    };
    if workload.is_pod() {
        if is_mirror_pod(&request.object) {
            return Err(Skip::MirrorPod);
        }
    } else if has_controller(&request.object) {
        return Err(Skip::ControlledWorkload);
    }
    if is_update {
        if workload.kind == "Job" {
            return Err(Skip::JobUpdate);
        }
        if !request.old_object.is_null()
            && request.object.pointer(workload.template)
                == request.old_object.pointer(workload.template)
        {
            return Err(Skip::TemplateUnchanged);
        }
    }
    Ok(workload)
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
    fn pods_are_evaluated_on_create_only() {
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
        assert!(applicable(&changed).is_ok());
    }

    #[test]
    fn job_updates_are_never_evaluated() {
        let job = json!({"kind": "Job", "spec": {"template": {"spec": {"containers": []}}}});
        let update = request(
            ("batch", "Job"),
            "UPDATE",
            job.clone(),
            json!({"kind": "Job"}),
        );
        assert_eq!(applicable(&update), Err(Skip::JobUpdate));
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
