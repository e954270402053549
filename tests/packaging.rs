//! The files users see beside the module agree with it and with each other:
//! Cargo.toml, metadata.yml, artifacthub-pkg.yml, artifacthub-repo.yml,
//! questions-ui.yml, the README and the example policies; the README's quick
//! start is what the Makefile provides, and the Makefile does its own set-up;
//! the release workflow ships the module it tests; `make quickstart` sums up
//! each mutation readably.

mod common;
#[path = "../examples/support/summary.rs"]
mod summary;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use sidecar_lifecycle_policy::catalogue::{BUILTIN_SETUP_INIT_CONTAINERS, CATALOGUE, StartupProbe};
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
    // the same two tables as the code's (SPEC §3.1): names and injector;
    // then native switch, starts after, startupProbe and own shutdown time
    for entry in CATALOGUE {
        let rows: Vec<&str> = readme
            .lines()
            .filter(|line| line.starts_with(&format!("| `{}`", entry.name())))
            .collect();
        let names_row = rows
            .iter()
            .find(|row| row.contains(&format!(" | {} |", entry.injector)))
            .unwrap_or_else(|| {
                panic!(
                    "README catalogue lacks {} ({})",
                    entry.name(),
                    entry.injector
                )
            });
        for name in entry.names {
            assert!(
                names_row.contains(&format!("`{name}`")),
                "{names_row}: lacks {name}"
            );
        }
        let needs_row = rows
            .iter()
            .find(|row| row.contains("derived"))
            .unwrap_or_else(|| panic!("README lacks what {} needs", entry.name()));
        let mut facts: Vec<String> = entry
            .starts_after
            .iter()
            .map(|name| format!("`{name}`"))
            .collect();
        match &entry.native_switch {
            Some(switch) => facts.push(format!("`{}` ({}", switch.key, switch.since)),
            None => facts.push("none".to_string()),
        }
        facts.push(match entry.startup_probe {
            StartupProbe::Derived => "| derived |".to_string(),
            StartupProbe::NeverDerived => "**never derived**".to_string(),
        });
        if let Some(flag) = entry.shutdown_flag {
            facts.push(format!("`-{flag}`"));
        }
        for fact in facts {
            assert!(
                needs_row.contains(&fact),
                "README: {needs_row}\nlacks {fact}"
            );
        }
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
            if !common::is_request_file(&file) {
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

// ---------------------------------------------------------------------------
// The quick start and the Makefile
// ---------------------------------------------------------------------------

/// The rules of the Makefile: each target with its prerequisites (normal and
/// order-only together) and its recipe, continuation lines joined.
fn makefile_rules() -> BTreeMap<String, (Vec<String>, String)> {
    let text = read("Makefile");
    let mut rules: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    let mut logical_lines: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        pending.push_str(line);
        if let Some(stripped) = pending.strip_suffix('\\') {
            pending = format!("{stripped} ");
            continue;
        }
        logical_lines.push(std::mem::take(&mut pending));
    }
    for line in logical_lines {
        if let Some(recipe) = line.strip_prefix('\t') {
            for target in &current {
                let rule = rules.entry(target.clone()).or_default();
                rule.1.push_str(recipe);
                rule.1.push('\n');
            }
            continue;
        }
        current.clear();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with(' ') {
            continue;
        }
        let Some((targets, rest)) = line.split_once(':') else {
            continue;
        };
        // Assignments (`:=`, `::=`) and conditional assignments are no rules.
        if rest.starts_with('=') || rest.starts_with(":=") || targets.contains('=') {
            continue;
        }
        let prerequisites: Vec<String> = rest
            .split_whitespace()
            .filter(|word| *word != "|")
            .map(str::to_string)
            .collect();
        for target in targets.split_whitespace() {
            let rule = rules.entry(target.to_string()).or_default();
            rule.0.extend(prerequisites.iter().cloned());
            current.push(target.to_string());
        }
    }
    rules
}

/// The value of a `NAME := value` (or `?=`, `=`) variable of the Makefile.
fn makefile_variable(name: &str) -> String {
    read("Makefile")
        .lines()
        .find_map(|line| {
            let (left, value) = line.split_once('=')?;
            let left = left.trim_end_matches([':', '?', ' ']);
            (left == name).then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("the Makefile sets no {name}"))
}

/// Every target `target` depends on, directly or not.
fn all_prerequisites(rules: &BTreeMap<String, (Vec<String>, String)>, target: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut todo = vec![target.to_string()];
    while let Some(next) = todo.pop() {
        for prerequisite in rules.get(&next).map(|rule| &rule.0).into_iter().flatten() {
            if !found.contains(prerequisite) {
                found.push(prerequisite.clone());
                todo.push(prerequisite.clone());
            }
        }
    }
    found
}

/// The commands (`$ ...` lines, comments cut) of the code blocks of the
/// README section whose heading is `heading`.
fn readme_section_commands(heading: &str) -> Vec<String> {
    let readme = read("README.md");
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no section ## {heading}"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if let Some(command) = line.trim_start().strip_prefix("$ ").filter(|_| in_block) {
            let command = command.split(" #").next().unwrap_or_default().trim();
            commands.push(command.to_string());
        }
    }
    commands
}

#[test]
fn readme_quick_start_runs_only_targets_of_the_makefile() {
    let commands = readme_section_commands("Quick start");
    let rules = makefile_rules();
    assert!(
        commands.iter().any(|command| command == "make quickstart")
            && commands.iter().any(|command| command == "make test"),
        "the quick start should be `make quickstart` and `make test`: {commands:?}"
    );
    for command in &commands {
        let mut words = command.split_whitespace();
        assert_eq!(
            words.next(),
            Some("make"),
            "README quick start: `{command}` is not a make command: the Makefile must do that set-up itself"
        );
        for target in words.filter(|word| !word.contains('=')) {
            assert!(
                rules.contains_key(target),
                "README quick start: `{command}`: the Makefile has no target {target}"
            );
        }
    }
    for target in ["quickstart", "test"] {
        assert!(
            all_prerequisites(&rules, target).contains(&"policy.wasm".to_string()),
            "make {target} should build policy.wasm first"
        );
    }
}

#[test]
fn makefile_adds_the_wasm_target_before_building_the_module() {
    let rules = makefile_rules();
    assert_eq!(makefile_variable("WASM_TARGET"), "wasm32-wasip1");
    let (prerequisites, recipe) = &rules["policy.wasm"];
    assert!(
        recipe.contains("--target=$(WASM_TARGET)"),
        "policy.wasm: {recipe}"
    );
    let adders: Vec<&String> = prerequisites
        .iter()
        .filter(|prerequisite| {
            rules.get(*prerequisite).is_some_and(|(_, recipe)| {
                recipe.contains("rustup target add $(WASM_TARGET)")
                    && recipe.contains("rustup target list --installed")
            })
        })
        .collect();
    assert!(
        !adders.is_empty(),
        "no prerequisite of policy.wasm runs `rustup target add $(WASM_TARGET)` when `rustup target list --installed` lacks it: {prerequisites:?}"
    );
}

/// Runs the Makefile as a user would, with the given PATH and arguments, out
/// of reach of any make running this test (`make test`): its flags and
/// command-line variables, such as STRICT_TOOLS=1, travel in MAKEFLAGS.
fn run_make(path: &str, args: &[&str]) -> Output {
    Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--no-print-directory", "-s"])
        .args(args)
        .env("PATH", path)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("STRICT_TOOLS")
        .output()
        .expect("make is installed (the README's two commands need it)")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn make_wasm_target_asks_rustup_for_the_target_only_when_it_is_missing() {
    let dir = std::env::temp_dir().join(format!("packaging-rustup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let fake_rustup = dir.join("rustup");
    // A rustup whose toolchain has only the host target, or every target
    // when INSTALLED is set; it logs its arguments.
    std::fs::write(
        &fake_rustup,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n\
             if [ \"$*\" = 'target list --installed' ]; then echo x86_64-unknown-linux-gnu; \
             [ -n \"$INSTALLED\" ] && echo wasm32-wasip1; fi\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake_rustup, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let output = run_make(&path, &["wasm-target"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_lines(&output), ["rustup target add wasm32-wasip1"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "target list --installed\ntarget add wasm32-wasip1\n"
    );

    std::fs::remove_file(&log).unwrap();
    let output = run_make(&path, &["wasm-target", "INSTALLED=1"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_lines(&output), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "target list --installed\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn make_test_skips_e2e_bats_with_one_line_without_bats_or_jq() {
    let rules = makefile_rules();
    assert!(
        rules["test"].0.contains(&"test-e2e".to_string()),
        "make test should run e2e.bats through test-e2e"
    );
    assert!(
        rules["test"]
            .1
            .contains("POLICY_WASM=$(CURDIR)/policy.wasm cargo test"),
        "make test should run the tests on policy.wasm"
    );
    let path = std::env::var("PATH").unwrap_or_default();
    let missing = "/nonexistent/sidecar-lifecycle-policy";
    for (args, line) in [
        (
            vec![format!("BATS={missing}/bats"), "JQ=true".to_string()],
            "skipped e2e.bats: bats is not installed (apt-get install bats; or see ",
        ),
        (
            vec!["BATS=true".to_string(), format!("JQ={missing}/jq")],
            "skipped e2e.bats: jq is not installed (apt-get install jq; or see ",
        ),
    ] {
        let mut make_args = vec!["test-e2e".to_string()];
        make_args.extend(args.iter().cloned());
        let make_args: Vec<&str> = make_args.iter().map(String::as_str).collect();
        let output = run_make(&path, &make_args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        let lines = stdout_lines(&output);
        assert_eq!(lines.len(), 1, "{args:?}: one line, not {lines:?}");
        assert!(lines[0].starts_with(line), "{args:?}: {lines:?}");

        // CI (.ci/run) installs them: there a skip is a failure.
        let mut strict = make_args.clone();
        strict.push("STRICT_TOOLS=1");
        let output = run_make(&path, &strict);
        assert!(
            !output.status.success(),
            "{strict:?} should fail: {output:?}"
        );
    }
    // With bats and jq but no kwctl, e2e.bats itself runs (and reports each
    // test skipped); `true` stands in for bats here.
    let output = run_make(
        &path,
        &[
            "test-e2e",
            "BATS=true",
            "JQ=true",
            &format!("KWCTL={missing}/kwctl"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_lines(&output), ["true e2e.bats"]);
}

#[test]
fn ci_installs_every_tool_and_runs_make_test_strictly() {
    let run = read(".ci/run");
    for package in ["bats", "jq", "binaryen"] {
        assert!(
            run.contains(&format!("missing+=({package})")),
            ".ci/run should install {package}"
        );
    }
    assert!(
        run.lines()
            .any(|line| line.starts_with("make test ") && line.contains("STRICT_TOOLS=1")),
        ".ci/run should run `make test ... STRICT_TOOLS=1`"
    );
}

// ---------------------------------------------------------------------------
// The release ships the tested module
// ---------------------------------------------------------------------------

fn workflow_steps(file: &str, job: &str) -> Vec<serde_yaml::Value> {
    let workflow = yaml(file);
    workflow["jobs"][job]["steps"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{file}: job {job} has no steps"))
        .clone()
}

fn step_index(
    steps: &[serde_yaml::Value],
    what: &str,
    found: impl Fn(&str, &str) -> bool,
) -> usize {
    steps
        .iter()
        .position(|step| {
            found(
                step["uses"].as_str().unwrap_or_default(),
                step["run"].as_str().unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| panic!("release.yml: no step {what}"))
}

#[test]
fn release_workflow_pushes_the_module_it_tested() {
    let text = read(".github/workflows/release.yml");
    assert!(
        !text.lines().any(|line| !line.trim_start().starts_with('#')
            && line.contains("reusable-release-policy-rust")),
        "Kubewarden's reusable release workflow builds the module without wasm-opt"
    );
    let steps = workflow_steps(".github/workflows/release.yml", "release");
    let build = step_index(
        &steps,
        "building policy.wasm strictly with wasm-opt",
        |_, run| run.contains("make annotated-policy.wasm") && run.contains("STRICT_TOOLS=1"),
    );
    let record = step_index(&steps, "recording the sha256 of the modules", |_, run| {
        run.contains("sha256sum policy.wasm annotated-policy.wasm")
    });
    let tests = step_index(&steps, "testing the annotated module", |_, run| {
        run.contains("POLICY_WASM=\"$GITHUB_WORKSPACE/annotated-policy.wasm\" cargo test")
    });
    let asset_tests = step_index(&steps, "testing the release asset policy.wasm", |_, run| {
        run.contains("POLICY_WASM=\"$GITHUB_WORKSPACE/policy.wasm\" cargo test")
    });
    let e2e = step_index(&steps, "running e2e.bats with kwctl", |_, run| {
        run.contains("make e2e-tests")
    });
    let check = step_index(&steps, "checking the sha256 before the push", |_, run| {
        run.contains("sha256sum --check")
    });
    let release = step_index(&steps, "pushing with policy-release", |uses, _| {
        uses.starts_with("kubewarden/github-actions/policy-release@")
    });
    let pulled = step_index(
        &steps,
        "comparing the pushed module with the tested one",
        |_, run| run.contains("kwctl pull") && run.contains("cmp annotated-policy.wasm"),
    );
    assert!(
        build < record
            && record < tests
            && record < asset_tests
            && record < e2e
            && tests < check
            && asset_tests < check
            && e2e < check
            && check < release
            && release < pulled,
        "release.yml: build, record, test, check, push, compare: in that order"
    );
    for step in &steps {
        let uses = step["uses"].as_str().unwrap_or_default();
        assert!(
            !uses.contains("policy-build-rust"),
            "policy-build-rust builds the module without wasm-opt"
        );
    }
    let artifacthub = workflow_steps(".github/workflows/release.yml", "push-artifacthub");
    assert!(
        artifacthub.iter().any(|step| step["uses"]
            .as_str()
            .is_some_and(|uses| uses.starts_with("kubewarden/github-actions/push-artifacthub@"))),
        "release.yml should update the artifacthub branch"
    );
}

#[test]
fn ci_tests_the_module_wasm_opt_produces() {
    let test_steps = workflow_steps(".github/workflows/test.yml", "test");
    let e2e_steps = workflow_steps(".github/workflows/test.yml", "e2e-tests");
    for (job, steps) in [("test", &test_steps), ("e2e-tests", &e2e_steps)] {
        assert!(
            steps.iter().any(|step| step["run"]
                .as_str()
                .is_some_and(|run| run.contains("make ") && run.contains("STRICT_TOOLS=1"))),
            "test.yml job {job} should build the module with `make ... STRICT_TOOLS=1` (wasm-opt required)"
        );
        assert!(
            !steps.iter().any(|step| step["uses"]
                .as_str()
                .is_some_and(|uses| uses.contains("policy-build-rust"))),
            "test.yml job {job}: policy-build-rust builds the module without wasm-opt"
        );
    }
}

#[test]
fn artifacthub_repository_metadata_names_the_owners() {
    let repo = yaml("artifacthub-repo.yml");
    let owners = repo["owners"]
        .as_sequence()
        .expect("artifacthub-repo.yml: a list of owners");
    assert!(!owners.is_empty(), "artifacthub-repo.yml: no owner");
    let author = str_at(
        &yaml("metadata.yml"),
        &["annotations", "io.kubewarden.policy.author"],
    )
    .to_string();
    for owner in owners {
        let name = owner["name"].as_str().expect("an owner has a name");
        let email = owner["email"].as_str().expect("an owner has an email");
        assert!(!name.trim().is_empty() && email.contains('@'), "{owner:?}");
        assert!(
            author.contains(&format!("<{email}>")),
            "owner {email} is not the author of metadata.yml ({author})"
        );
    }
    if let Some(id) = repo.get("repositoryID") {
        let id = id.as_str().expect("repositoryID is a string");
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert!(
            groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            "repositoryID must be the UUID Artifact Hub gives, not {id:?}"
        );
    }
    for key in repo.as_mapping().unwrap().keys() {
        let key = key.as_str().unwrap();
        assert!(
            ["repositoryID", "owners", "ignore"].contains(&key),
            "artifacthub-repo.yml: unknown key {key}"
        );
    }
}

// ---------------------------------------------------------------------------
// The summary `make quickstart` prints before each patch
// ---------------------------------------------------------------------------

fn deployment(pod_spec: Value, pod_annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout"},
        "spec": {"template": {"metadata": {"annotations": pod_annotations}, "spec": pod_spec}}
    })
}

#[test]
fn quickstart_summary_of_a_conversion() {
    let probe = json!({"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15});
    let before = deployment(
        json!({
            "initContainers": [{"name": "istio-init", "image": "proxyv2"}],
            "containers": [
                {"name": "checkout", "image": "checkout", "lifecycle": {"type": "Standard"}},
                {"name": "istio-proxy", "image": "proxyv2", "readinessProbe": probe},
                {"name": "vault-agent", "image": "vault"}
            ]
        }),
        json!({"sidecar.istio.io/status": "{\"containers\":[\"istio-proxy\"]}"}),
    );
    let after = deployment(
        json!({
            "initContainers": [
                {"name": "istio-init", "image": "proxyv2"},
                {"name": "istio-proxy", "image": "proxyv2", "readinessProbe": probe,
                 "restartPolicy": "Always", "startupProbe": probe},
                {"name": "vault-agent", "image": "vault", "restartPolicy": "Always"}
            ],
            "containers": [{"name": "checkout", "image": "checkout"}],
            "terminationGracePeriodSeconds": 40
        }),
        json!({"sidecar.istio.io/status": "{\"initContainers\":[\"istio-proxy\"]}"}),
    );
    assert_eq!(
        summary::summarize("Deployment", &before, &after),
        [
            "moved to initContainers (restartPolicy: Always): istio-proxy, vault-agent",
            "initContainers now [istio-init, istio-proxy, vault-agent]; containers now [checkout]",
            "lifecycle.type removed: checkout",
            "startupProbe added: istio-proxy",
            "terminationGracePeriodSeconds unset (30) -> 40",
            "annotation sidecar.istio.io/status rewritten",
        ]
    );
}

#[test]
fn quickstart_summary_of_a_reapplied_sidecar() {
    // istio-proxy is a native sidecar already and was injected again in
    // containers: the containers entry replaces the initContainers entry.
    let pod = |spec: Value| json!({"kind": "Pod", "metadata": {"name": "web"}, "spec": spec});
    let before = pod(json!({
        "initContainers": [
            {"name": "istio-init"},
            {"name": "istio-proxy", "image": "proxyv2:1.26", "restartPolicy": "Always"}
        ],
        "containers": [{"name": "web"}, {"name": "istio-proxy", "image": "proxyv2:1.27"}],
        "terminationGracePeriodSeconds": 45
    }));
    let after = pod(json!({
        "initContainers": [
            {"name": "istio-init"},
            {"name": "istio-proxy", "image": "proxyv2:1.27", "restartPolicy": "Always"}
        ],
        "containers": [{"name": "web"}],
        "terminationGracePeriodSeconds": 45
    }));
    assert_eq!(
        summary::summarize("Pod", &before, &after),
        [
            "re-applied istio-proxy folded into initContainers",
            "initContainers now [istio-init, istio-proxy]; containers now [web]",
        ]
    );
}

#[test]
fn quickstart_summary_finds_the_pod_spec_of_every_kind_and_names_other_changes() {
    let cronjob = |grace: Value, label: &str| {
        json!({
            "kind": "CronJob",
            "metadata": {"labels": {"team": label}},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "report"}],
                "terminationGracePeriodSeconds": grace
            }}}}}
        })
    };
    assert_eq!(
        summary::summarize(
            "CronJob",
            &cronjob(json!(120), "a"),
            &cronjob(json!(60), "a")
        ),
        ["terminationGracePeriodSeconds 120 -> 60"]
    );
    assert_eq!(
        summary::summarize(
            "CronJob",
            &cronjob(json!(60), "a"),
            &cronjob(json!(60), "b")
        ),
        ["other changes: /metadata/labels/team"]
    );
    let same = cronjob(json!(60), "a");
    assert_eq!(summary::summarize("CronJob", &same, &same), ["no change"]);

    // Istio's record on a CronJob's job template (istioctl kube-inject).
    let mut recorded = same.clone();
    recorded["spec"]["jobTemplate"]["metadata"] =
        json!({"annotations": {"sidecar.istio.io/status": "{}"}});
    let mut rewritten = recorded.clone();
    rewritten["spec"]["jobTemplate"]["metadata"]["annotations"]["sidecar.istio.io/status"] =
        json!("{\"initContainers\":[\"istio-proxy\"]}");
    assert_eq!(
        summary::summarize("CronJob", &recorded, &rewritten),
        ["job template annotation sidecar.istio.io/status rewritten"]
    );
}
