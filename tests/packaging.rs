//! The files users see beside the module agree with it and with each other:
//! Cargo.toml, metadata.yml, artifacthub-pkg.yml, questions-ui.yml, the
//! README and the example policies.

mod common;

use std::path::Path;

use serde_json::{Value, json};
use sidecar_lifecycle_policy::catalogue::{BUILTIN_SETUP_INIT_CONTAINERS, BUILTIN_SIDECARS};
use sidecar_lifecycle_policy::settings::{GRACE_KEYS, MATCHER_KEYS, SETTING_KEYS};

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(file: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(file)).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"))
}

fn yaml_str(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn as_json(value: &serde_yaml::Value) -> Value {
    serde_json::to_value(value).expect("YAML that JSON can express")
}

fn str_at<'a>(value: &'a serde_yaml::Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(value, |value, key| &value[*key])
        .as_str()
        .unwrap_or_else(|| panic!("no string at {path:?}"))
}

#[test]
fn version_is_the_same_everywhere() {
    let cargo_version = env!("CARGO_PKG_VERSION");
    let metadata = yaml("metadata.yml");
    assert_eq!(
        str_at(&metadata, &["annotations", "io.kubewarden.policy.version"]),
        cargo_version
    );
    let artifacthub = yaml("artifacthub-pkg.yml");
    assert_eq!(str_at(&artifacthub, &["version"]), cargo_version);
    let image = artifacthub["containersImages"][0]["image"]
        .as_str()
        .unwrap();
    assert!(image.ends_with(&format!(":v{cargo_version}")), "{image}");
    let oci_url = str_at(&metadata, &["annotations", "io.kubewarden.policy.ociUrl"]);
    assert!(image.starts_with(oci_url), "{image} is not {oci_url}");
}

#[test]
fn metadata_and_artifacthub_agree_on_rules_mutation_and_resources() {
    let metadata = yaml("metadata.yml");
    let artifacthub = yaml("artifacthub-pkg.yml");
    let annotations = &artifacthub["annotations"];
    let rules = yaml_str(str_at(annotations, &["kubewarden/rules"]));
    assert_eq!(as_json(&rules), as_json(&metadata["rules"]));
    assert_eq!(metadata["mutating"], serde_yaml::Value::Bool(true));
    assert_eq!(str_at(annotations, &["kubewarden/mutation"]), "true");
    assert_eq!(metadata["executionMode"].as_str(), Some("kubewarden-wapc"));
    assert_eq!(metadata["backgroundAudit"], serde_yaml::Value::Bool(true));
    let resources = str_at(&metadata, &["annotations", "io.artifacthub.resources"]);
    assert_eq!(str_at(annotations, &["kubewarden/resources"]), resources);
    let kinds: Vec<&str> = resources.split(',').map(str::trim).collect();
    assert_eq!(
        kinds,
        [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "ReplicationController",
            "Job",
            "CronJob"
        ]
    );
    let keywords = str_at(&metadata, &["annotations", "io.artifacthub.keywords"]);
    assert!(
        keywords
            .split(',')
            .all(|keyword| !keyword.trim().is_empty()),
        "empty keyword in {keywords:?}"
    );
}

#[test]
fn artifacthub_embeds_the_questions_as_they_are() {
    let artifacthub = yaml("artifacthub-pkg.yml");
    let embedded = yaml_str(str_at(
        &artifacthub["annotations"],
        &["kubewarden/questions-ui"],
    ));
    assert_eq!(as_json(&embedded), as_json(&yaml("questions-ui.yml")));
}

/// Every variable of questions-ui.yml, nested ones as `parent.child` or
/// `list[].field`.
fn question_variables() -> Vec<String> {
    fn collect(questions: &serde_yaml::Value, prefix: &str, found: &mut Vec<String>) {
        for question in questions.as_sequence().expect("a list of questions") {
            let variable = question["variable"]
                .as_str()
                .expect("every question has a variable");
            // subquestions carry their full dotted path already
            let name = if variable.contains('.') || prefix.is_empty() {
                variable.to_string()
            } else {
                format!("{prefix}{variable}")
            };
            found.push(name.clone());
            if let Some(sub) = question.get("subquestions") {
                collect(sub, "", found);
            }
            if let Some(sequence) = question.get("sequence_questions") {
                collect(sequence, &format!("{name}[]."), found);
            }
        }
    }
    let mut found = Vec::new();
    collect(&yaml("questions-ui.yml")["questions"], "", &mut found);
    found
}

fn every_setting() -> Vec<String> {
    let mut keys: Vec<String> = SETTING_KEYS.iter().map(|key| key.to_string()).collect();
    keys.extend(MATCHER_KEYS.iter().map(|key| format!("sidecars[].{key}")));
    keys.extend(
        GRACE_KEYS
            .iter()
            .map(|key| format!("terminationGracePeriod.{key}")),
    );
    keys
}

#[test]
fn questions_offer_exactly_the_settings() {
    let mut offered = question_variables();
    let mut known = every_setting();
    offered.sort();
    known.sort();
    assert_eq!(offered, known);
}

#[test]
fn question_defaults_are_valid_settings_and_the_policy_defaults() {
    fn defaults(questions: &serde_yaml::Value, settings: &mut serde_json::Map<String, Value>) {
        for question in questions.as_sequence().unwrap() {
            let variable = question["variable"].as_str().unwrap();
            let default = as_json(&question["default"]);
            if let Some(sub) = question.get("subquestions") {
                let mut nested = serde_json::Map::new();
                defaults(sub, &mut nested);
                let nested = nested
                    .into_iter()
                    .map(|(key, value)| (key.rsplit('.').next().unwrap().to_string(), value))
                    .collect();
                settings.insert(variable.to_string(), Value::Object(nested));
            } else {
                settings.insert(variable.to_string(), default);
            }
        }
    }
    let mut settings = serde_json::Map::new();
    defaults(&yaml("questions-ui.yml")["questions"], &mut settings);
    let settings = Value::Object(settings);
    let policy = common::Policy::new();
    assert_eq!(
        policy.validate_settings(&settings)["valid"],
        json!(true),
        "{settings}"
    );
    // The form's defaults behave as empty settings on every scenario fixture.
    for fixture in [
        "istio-prestop-deployment.json",
        "annotation-declared-deployment.json",
        "pod-at-max-grace.json",
    ] {
        let request = common::fixture(fixture);
        assert_eq!(
            policy.validate(&request, &settings),
            policy.validate(&request, &json!({})),
            "{fixture}"
        );
    }
}

#[test]
fn readme_documents_every_setting_and_the_catalogues() {
    let readme = read("README.md");
    for key in SETTING_KEYS
        .iter()
        .filter(|key| **key != "terminationGracePeriod")
    {
        assert!(
            readme.contains(&format!("| `{key}` |")),
            "README settings table lacks {key}"
        );
    }
    for key in GRACE_KEYS {
        assert!(
            readme.contains(&format!("| `terminationGracePeriod.{key}` |")),
            "README settings table lacks {key}"
        );
    }
    for name in BUILTIN_SIDECARS {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README catalogue lacks {name}"
        );
    }
    for name in BUILTIN_SETUP_INIT_CONTAINERS {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README lacks setup container {name}"
        );
    }
}

fn example_policies() -> Vec<(String, serde_yaml::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut policies: Vec<(String, serde_yaml::Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name.clone(), yaml(&format!("examples/{name}")))
        })
        .collect();
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        policies.len() >= 5,
        "examples/ should hold the five example policies"
    );
    policies
}

#[test]
fn example_policies_have_valid_settings() {
    let policy = common::Policy::new();
    for (name, manifest) in example_policies() {
        let kind = manifest["kind"].as_str().unwrap();
        assert!(
            ["ClusterAdmissionPolicy", "AdmissionPolicy"].contains(&kind),
            "{name}: {kind}"
        );
        assert_eq!(
            manifest["apiVersion"].as_str(),
            Some("policies.kubewarden.io/v1"),
            "{name}"
        );
        let settings = as_json(&manifest["spec"]["settings"]);
        let answer = policy.validate_settings(&settings);
        assert_eq!(answer["valid"], json!(true), "{name}: {answer}");
    }
}

#[test]
fn example_policies_use_the_published_module_and_known_rules() {
    let metadata_rules = as_json(&yaml("metadata.yml")["rules"]);
    let allowed: Vec<(String, String)> = metadata_rules
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| {
            let resources = rule["resources"].as_array().unwrap().clone();
            let operations = rule["operations"].as_array().unwrap().clone();
            resources.into_iter().flat_map(move |resource| {
                operations.clone().into_iter().map(move |op| {
                    (
                        resource.as_str().unwrap().to_string(),
                        op.as_str().unwrap().to_string(),
                    )
                })
            })
        })
        .collect();
    let oci_url = str_at(
        &yaml("metadata.yml"),
        &["annotations", "io.kubewarden.policy.ociUrl"],
    )
    .to_string();
    for (name, manifest) in example_policies() {
        let module = manifest["spec"]["module"].as_str().unwrap();
        assert_eq!(
            module,
            format!("registry://{oci_url}:v{}", env!("CARGO_PKG_VERSION")),
            "{name}"
        );
        for rule in as_json(&manifest["spec"]["rules"]).as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for op in rule["operations"].as_array().unwrap() {
                    let pair = (
                        resource.as_str().unwrap().to_string(),
                        op.as_str().unwrap().to_string(),
                    );
                    assert!(
                        allowed.contains(&pair),
                        "{name}: {pair:?} is not a rule of metadata.yml"
                    );
                }
            }
        }
    }
}

#[test]
fn validate_only_examples_never_mutate() {
    for (name, manifest) in example_policies() {
        if manifest["spec"]["mutating"].as_bool() != Some(false) {
            continue;
        }
        let settings = as_json(&manifest["spec"]["settings"]);
        let policy = common::Policy::new();
        for entry in
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")).unwrap()
        {
            let file = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !file.ends_with(".json") {
                continue;
            }
            let response = policy.validate(&common::fixture(&file), &settings);
            assert!(
                response.get("mutated_object").is_none_or(Value::is_null),
                "{name} has mutating: false but mutates {file}"
            );
        }
    }
}
