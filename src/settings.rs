//! SPEC §9: the settings, their defaults, and their validation. Every error
//! names the key by its full path (`terminationGracePeriod.minSeconds`,
//! `sidecars[1].image`), so the user finds it in a long policy manifest.

use std::fmt;

use serde_json::{Map, Value};

use crate::catalogue::{self, CATALOGUE, Entry};
use crate::glob::Glob;
use crate::pod::MAX_SECONDS;

/// The annotation that declares sidecars by name, unless settings say otherwise.
pub const DEFAULT_SIDECAR_ANNOTATION: &str = "sidecar-lifecycle/containers";
/// The annotation that keeps containers regular, unless settings say otherwise.
pub const DEFAULT_STANDARD_ANNOTATION: &str = "sidecar-lifecycle/standard-containers";

#[derive(Debug, Clone)]
pub struct Settings {
    pub sidecars: Vec<Matcher>,
    /// The catalogue entries rule 7 of §3 and the native switches of §4
    /// apply to: every entry for `true`, none for `false`, or those listed.
    pub builtin_sidecars: Vec<&'static Entry>,
    /// Ask the injectors for native sidecars at Pod CREATE (SPEC §4).
    pub native_injection: bool,
    /// `None` when the setting is `""`: declaring by annotation is off.
    pub sidecar_annotation: Option<String>,
    /// `None` when the setting is `""`: opting out by annotation is off.
    pub standard_annotation: Option<String>,
    pub legacy_sidecars: LegacySidecars,
    pub setup_init_containers: Vec<Glob>,
    pub startup_probe: StartupProbe,
    pub startup_probe_window_seconds: u64,
    /// 0 means the readiness period.
    pub startup_probe_period_seconds: u64,
    pub termination_grace_period: GraceSettings,
}

/// `{name, image}`: every field given must match.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: Option<Glob>,
    pub image: Option<Glob>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySidecars {
    Convert,
    Reject,
    Warn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupProbe {
    Derive,
    Require,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnViolation {
    Adjust,
    Reject,
}

#[derive(Debug, Clone)]
pub struct GraceSettings {
    pub min_seconds: Option<u64>,
    pub max_seconds: Option<u64>,
    pub sidecar_shutdown_seconds: u64,
    pub app_shutdown_seconds: u64,
    pub on_violation: OnViolation,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sidecars: Vec::new(),
            builtin_sidecars: CATALOGUE.iter().collect(),
            native_injection: true,
            sidecar_annotation: Some(DEFAULT_SIDECAR_ANNOTATION.to_string()),
            standard_annotation: Some(DEFAULT_STANDARD_ANNOTATION.to_string()),
            legacy_sidecars: LegacySidecars::Convert,
            setup_init_containers: Vec::new(),
            startup_probe: StartupProbe::Derive,
            startup_probe_window_seconds: 300,
            startup_probe_period_seconds: 1,
            termination_grace_period: GraceSettings::default(),
        }
    }
}

impl Default for GraceSettings {
    fn default() -> Self {
        GraceSettings {
            min_seconds: None,
            max_seconds: None,
            sidecar_shutdown_seconds: 5,
            app_shutdown_seconds: 0,
            on_violation: OnViolation::Adjust,
        }
    }
}

impl Settings {
    /// Whether `builtinSidecars` enables this catalogue entry.
    pub fn is_builtin_enabled(&self, entry: &Entry) -> bool {
        self.builtin_sidecars
            .iter()
            .any(|enabled| enabled.name() == entry.name())
    }
}

impl Matcher {
    pub fn matches(&self, name: &str, image: Option<&str>) -> bool {
        let name_matches = self.name.as_ref().is_none_or(|glob| glob.matches(name));
        let image_matches = match &self.image {
            None => true,
            Some(glob) => image.is_some_and(|image| glob.matches(image)),
        };
        name_matches && image_matches
    }
}

/// A setting that is wrong, with the full path of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub path: String,
    pub problem: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "settings {}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

/// Every key the settings accept, by level: the packaging tests check that
/// questions-ui.yml and the README offer exactly these.
pub const SETTING_KEYS: &[&str] = &[
    "sidecars",
    "builtinSidecars",
    "nativeInjection",
    "sidecarAnnotation",
    "standardAnnotation",
    "legacySidecars",
    "setupInitContainers",
    "startupProbe",
    "startupProbeWindowSeconds",
    "startupProbePeriodSeconds",
    "terminationGracePeriod",
];
pub const MATCHER_KEYS: &[&str] = &["name", "image"];
pub const GRACE_KEYS: &[&str] = &[
    "minSeconds",
    "maxSeconds",
    "sidecarShutdownSeconds",
    "appShutdownSeconds",
    "onViolation",
];

impl Settings {
    /// Reads settings as they come from the policy resource. A key given as
    /// `null` means its default, as Helm charts and UI forms send unset values.
    pub fn from_value(value: &Value) -> Result<Settings, SettingsError> {
        let mut settings = Settings::default();
        let root = match value {
            Value::Null => return Ok(settings),
            Value::Object(map) => Object::new(map, ""),
            _ => return Err(error("", "must be a JSON object")),
        };
        root.reject_unknown_keys(SETTING_KEYS)?;
        if let Some(list) = root.array("sidecars")? {
            settings.sidecars = list
                .iter()
                .enumerate()
                .map(|(index, item)| parse_matcher(item, &format!("sidecars[{index}]")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(entries) = root.builtin_sidecars("builtinSidecars")? {
            settings.builtin_sidecars = entries;
        }
        if let Some(flag) = root.bool("nativeInjection")? {
            settings.native_injection = flag;
        }
        if let Some(key) = root.annotation_key("sidecarAnnotation")? {
            settings.sidecar_annotation = key;
        }
        if let Some(key) = root.annotation_key("standardAnnotation")? {
            settings.standard_annotation = key;
        }
        if let (Some(sidecar), Some(standard)) =
            (&settings.sidecar_annotation, &settings.standard_annotation)
            && sidecar == standard
        {
            return Err(error(
                "standardAnnotation",
                format!(
                    "{standard:?} is also sidecarAnnotation: the two annotation keys must differ (\"\" turns one off)"
                ),
            ));
        }
        if let Some(mode) = root.choice("legacySidecars", &["convert", "reject", "warn"])? {
            settings.legacy_sidecars = match mode {
                "convert" => LegacySidecars::Convert,
                "reject" => LegacySidecars::Reject,
                _ => LegacySidecars::Warn,
            };
        }
        if let Some(list) = root.array("setupInitContainers")? {
            settings.setup_init_containers = list
                .iter()
                .enumerate()
                .map(|(index, item)| parse_glob(item, &format!("setupInitContainers[{index}]")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(mode) = root.choice("startupProbe", &["derive", "require", "ignore"])? {
            settings.startup_probe = match mode {
                "derive" => StartupProbe::Derive,
                "require" => StartupProbe::Require,
                _ => StartupProbe::Ignore,
            };
        }
        if let Some(seconds) = root.seconds("startupProbeWindowSeconds")? {
            settings.startup_probe_window_seconds = seconds;
        }
        if let Some(seconds) = root.seconds("startupProbePeriodSeconds")? {
            settings.startup_probe_period_seconds = seconds;
        }
        if let Some(grace) = root.object("terminationGracePeriod")? {
            settings.termination_grace_period = parse_grace(&grace)?;
        }
        Ok(settings)
    }
}

fn parse_matcher(value: &Value, path: &str) -> Result<Matcher, SettingsError> {
    let Value::Object(map) = value else {
        return Err(error(path, "must be an object with `name` and/or `image`"));
    };
    let matcher = Object::new(map, path);
    matcher.reject_unknown_keys(MATCHER_KEYS)?;
    let name = matcher.glob("name")?;
    let image = matcher.glob("image")?;
    if name.is_none() && image.is_none() {
        return Err(error(path, "needs `name`, `image` or both"));
    }
    Ok(Matcher { name, image })
}

fn parse_grace(grace: &Object) -> Result<GraceSettings, SettingsError> {
    grace.reject_unknown_keys(GRACE_KEYS)?;
    let mut settings = GraceSettings {
        min_seconds: grace.seconds("minSeconds")?,
        max_seconds: grace.seconds("maxSeconds")?,
        ..GraceSettings::default()
    };
    if let Some(seconds) = grace.seconds("sidecarShutdownSeconds")? {
        settings.sidecar_shutdown_seconds = seconds;
    }
    if let Some(seconds) = grace.seconds("appShutdownSeconds")? {
        settings.app_shutdown_seconds = seconds;
    }
    if let Some(mode) = grace.choice("onViolation", &["adjust", "reject"])? {
        settings.on_violation = if mode == "adjust" {
            OnViolation::Adjust
        } else {
            OnViolation::Reject
        };
    }
    if let (Some(min), Some(max)) = (settings.min_seconds, settings.max_seconds)
        && min > max
    {
        return Err(error(
            "terminationGracePeriod.minSeconds",
            format!("{min} is above terminationGracePeriod.maxSeconds {max}"),
        ));
    }
    Ok(settings)
}

fn parse_glob(value: &Value, path: &str) -> Result<Glob, SettingsError> {
    match value {
        Value::String(pattern) => Glob::parse(pattern).map_err(|problem| error(path, problem)),
        _ => Err(error(path, "must be a string (a glob pattern)")),
    }
}

/// Kubernetes qualified names (annotation keys): an optional DNS-subdomain
/// prefix and `/`, then a name of at most 63 characters, alphanumeric at both
/// ends, with `-`, `_` and `.` inside.
fn validate_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let is_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_label) {
            return Err(format!(
                "{key:?} is not a valid annotation key: the prefix before `/` must be a DNS subdomain (lowercase letters, digits, `-` and `.`)"
            ));
        }
    }
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if !name_ok {
        return Err(format!(
            "{key:?} is not a valid annotation key: the name must be 1-63 characters, alphanumeric at both ends, with `-`, `_` or `.` inside"
        ));
    }
    Ok(())
}

fn error(path: &str, problem: impl Into<String>) -> SettingsError {
    SettingsError {
        path: path.to_string(),
        problem: problem.into(),
    }
}

/// A JSON object of the settings and where it sits, for typed reads whose
/// errors carry the full path.
struct Object<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Object<'a> {
    fn new(map: &'a Map<String, Value>, path: &str) -> Self {
        Object {
            map,
            path: path.to_string(),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn reject_unknown_keys(&self, known: &[&str]) -> Result<(), SettingsError> {
        match self.map.keys().find(|key| !known.contains(&key.as_str())) {
            Some(key) => Err(error(
                &self.key_path(key),
                format!("unknown setting (known here: {})", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// The value of `key`, `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, SettingsError> {
        self.get(key)
            .map(|value| {
                value
                    .as_bool()
                    .ok_or_else(|| error(&self.key_path(key), "must be true or false"))
            })
            .transpose()
    }

    /// `true` (every entry), `false` (none) or a list of entry names.
    fn builtin_sidecars(&self, key: &str) -> Result<Option<Vec<&'static Entry>>, SettingsError> {
        let valid = || {
            CATALOGUE
                .iter()
                .map(Entry::name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(true)) => Ok(Some(CATALOGUE.iter().collect())),
            Some(Value::Bool(false)) => Ok(Some(Vec::new())),
            Some(Value::Array(names)) => {
                let mut entries: Vec<&'static Entry> = Vec::with_capacity(names.len());
                for (index, name) in names.iter().enumerate() {
                    let path = format!("{}[{index}]", self.key_path(key));
                    let Some(name) = name.as_str() else {
                        return Err(error(
                            &path,
                            format!("must be a string, one of: {}", valid()),
                        ));
                    };
                    let Some(entry) = catalogue::entry_named(name) else {
                        return Err(error(
                            &path,
                            format!("{name:?} is not a built-in sidecar; valid: {}", valid()),
                        ));
                    };
                    if !entries.iter().any(|known| known.name() == entry.name()) {
                        entries.push(entry);
                    }
                }
                Ok(Some(entries))
            }
            Some(_) => Err(error(
                &self.key_path(key),
                format!(
                    "must be true, false or a list of built-in sidecars ({})",
                    valid()
                ),
            )),
        }
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, SettingsError> {
        self.get(key)
            .map(|value| {
                value
                    .as_str()
                    .ok_or_else(|| error(&self.key_path(key), "must be a string"))
            })
            .transpose()
    }

    /// The value of a number or choice `key`: `None` also for `""`, which UI
    /// forms send for a cleared field.
    fn get_or_cleared(&self, key: &str) -> Option<&'a Value> {
        self.get(key).filter(|value| value.as_str() != Some(""))
    }

    /// An annotation key: `Some(None)` for `""` (off).
    fn annotation_key(&self, key: &str) -> Result<Option<Option<String>>, SettingsError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        if text.is_empty() {
            return Ok(Some(None));
        }
        validate_qualified_name(text).map_err(|problem| error(&self.key_path(key), problem))?;
        Ok(Some(Some(text.to_string())))
    }

    fn choice(&self, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, SettingsError> {
        let choices = || format!("must be one of: {}", allowed.join(", "));
        match self.get_or_cleared(key) {
            None => Ok(None),
            Some(Value::String(text)) if allowed.contains(&text.as_str()) => Ok(Some(text)),
            Some(Value::String(text)) => Err(error(
                &self.key_path(key),
                format!("{text:?} {}", choices()),
            )),
            Some(_) => Err(error(&self.key_path(key), choices())),
        }
    }

    fn seconds(&self, key: &str) -> Result<Option<u64>, SettingsError> {
        match self.get_or_cleared(key) {
            None => Ok(None),
            Some(value) => match value.as_u64() {
                Some(seconds) if seconds <= MAX_SECONDS => Ok(Some(seconds)),
                _ => Err(error(
                    &self.key_path(key),
                    format!("must be an integer from 0 to {MAX_SECONDS}, got {value}"),
                )),
            },
        }
    }

    fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, SettingsError> {
        self.get(key)
            .map(|value| {
                value
                    .as_array()
                    .ok_or_else(|| error(&self.key_path(key), "must be a list"))
            })
            .transpose()
    }

    fn object(&self, key: &str) -> Result<Option<Object<'a>>, SettingsError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Object::new(map, &self.key_path(key)))),
            Some(_) => Err(error(&self.key_path(key), "must be an object")),
        }
    }

    fn glob(&self, key: &str) -> Result<Option<Glob>, SettingsError> {
        self.get(key)
            .map(|value| parse_glob(value, &self.key_path(key)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(settings: Value) -> String {
        Settings::from_value(&settings).unwrap_err().to_string()
    }

    #[test]
    fn empty_and_null_settings_mean_the_defaults() {
        for empty in [
            json!({}),
            Value::Null,
            json!({"sidecars": null, "terminationGracePeriod": null}),
        ] {
            let settings = Settings::from_value(&empty).unwrap();
            assert!(settings.sidecars.is_empty());
            assert_eq!(settings.builtin_sidecars.len(), CATALOGUE.len());
            assert!(settings.native_injection);
            assert_eq!(
                settings.sidecar_annotation.as_deref(),
                Some("sidecar-lifecycle/containers")
            );
            assert_eq!(settings.legacy_sidecars, LegacySidecars::Convert);
            assert_eq!(settings.startup_probe, StartupProbe::Derive);
            assert_eq!(settings.startup_probe_window_seconds, 300);
            assert_eq!(settings.startup_probe_period_seconds, 1);
            assert_eq!(
                settings.standard_annotation.as_deref(),
                Some("sidecar-lifecycle/standard-containers")
            );
            let grace = settings.termination_grace_period;
            assert_eq!((grace.min_seconds, grace.max_seconds), (None, None));
            assert_eq!(
                (grace.sidecar_shutdown_seconds, grace.app_shutdown_seconds),
                (5, 0)
            );
            assert_eq!(grace.on_violation, OnViolation::Adjust);
        }
    }

    #[test]
    fn every_setting_is_read() {
        let settings = Settings::from_value(&json!({
            "sidecars": [{"name": "envoy"}, {"image": "*fluent-bit:*"}],
            "builtinSidecars": false,
            "nativeInjection": false,
            "sidecarAnnotation": "example.com/sidecars",
            "standardAnnotation": "example.com/regular",
            "legacySidecars": "warn",
            "setupInitContainers": ["*-net-setup"],
            "startupProbe": "require",
            "startupProbeWindowSeconds": 0,
            "startupProbePeriodSeconds": 2,
            "terminationGracePeriod": {"minSeconds": 10, "maxSeconds": 120, "sidecarShutdownSeconds": 3,
                "appShutdownSeconds": 15, "onViolation": "reject"}
        }))
        .unwrap();
        assert!(settings.sidecars[0].matches("envoy", None));
        assert!(
            settings.sidecars[1].matches("logs", Some("cr.fluentbit.io/fluent/fluent-bit:3.1.4"))
        );
        assert!(settings.builtin_sidecars.is_empty());
        assert!(!settings.native_injection);
        assert_eq!(
            settings.sidecar_annotation.as_deref(),
            Some("example.com/sidecars")
        );
        assert_eq!(settings.legacy_sidecars, LegacySidecars::Warn);
        assert!(settings.setup_init_containers[0].matches("cni-net-setup"));
        assert_eq!(settings.startup_probe, StartupProbe::Require);
        assert_eq!(settings.startup_probe_window_seconds, 0);
        assert_eq!(settings.startup_probe_period_seconds, 2);
        assert_eq!(
            settings.standard_annotation.as_deref(),
            Some("example.com/regular")
        );
        let grace = settings.termination_grace_period;
        assert_eq!(
            (grace.min_seconds, grace.max_seconds),
            (Some(10), Some(120))
        );
        assert_eq!(
            (grace.sidecar_shutdown_seconds, grace.app_shutdown_seconds),
            (3, 15)
        );
        assert_eq!(grace.on_violation, OnViolation::Reject);
    }

    #[test]
    fn builtin_sidecars_may_list_catalogue_entries_by_their_first_name() {
        let settings = Settings::from_value(
            &json!({"builtinSidecars": ["vault-agent", "daprd", "vault-agent"]}),
        )
        .unwrap();
        let names: Vec<&str> = settings.builtin_sidecars.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["vault-agent", "daprd"]);
        assert!(settings.is_builtin_enabled(catalogue::entry_of("daprd").unwrap()));
        assert!(!settings.is_builtin_enabled(catalogue::entry_of("istio-proxy").unwrap()));
        let none = Settings::from_value(&json!({"builtinSidecars": []})).unwrap();
        assert!(none.builtin_sidecars.is_empty());
        assert_eq!(
            problem(json!({"builtinSidecars": ["istio-proxy", "envoy"]})),
            "builtinSidecars[1]: \"envoy\" is not a built-in sidecar; valid: istio-proxy, linkerd-proxy, vault-agent, cloud-sql-proxy, daprd, consul-dataplane, otc-container"
        );
        // an entry is named by its first name, not by a pattern of it
        assert!(
            problem(json!({"builtinSidecars": ["consul-dataplane-*"]}))
                .starts_with("builtinSidecars[0]: ")
        );
        assert_eq!(
            problem(json!({"builtinSidecars": [true]})),
            "builtinSidecars[0]: must be a string, one of: istio-proxy, linkerd-proxy, vault-agent, cloud-sql-proxy, daprd, consul-dataplane, otc-container"
        );
    }

    #[test]
    fn an_empty_annotation_key_turns_the_annotation_off() {
        assert_eq!(
            Settings::from_value(&json!({"sidecarAnnotation": ""}))
                .unwrap()
                .sidecar_annotation,
            None
        );
    }

    #[test]
    fn unknown_keys_are_named_at_every_level() {
        assert!(problem(json!({"sidecar": []})).starts_with("sidecar: unknown setting"));
        assert!(
            problem(json!({"terminationGracePeriod": {"maxSecond": 3}}))
                .starts_with("terminationGracePeriod.maxSecond: unknown setting")
        );
        assert!(
            problem(json!({"sidecars": [{"name": "a"}, {"image": "b", "tag": "c"}]}))
                .starts_with("sidecars[1].tag: unknown setting")
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        assert_eq!(problem(json!([])), "settings must be a JSON object");
        assert_eq!(
            problem(json!({"builtinSidecars": "yes"})),
            "builtinSidecars: must be true, false or a list of built-in sidecars (istio-proxy, linkerd-proxy, vault-agent, cloud-sql-proxy, daprd, consul-dataplane, otc-container)"
        );
        assert_eq!(
            problem(json!({"nativeInjection": "yes"})),
            "nativeInjection: must be true or false"
        );
        assert_eq!(
            problem(json!({"sidecars": {"name": "a"}})),
            "sidecars: must be a list"
        );
        assert_eq!(
            problem(json!({"sidecars": ["envoy"]})),
            "sidecars[0]: must be an object with `name` and/or `image`"
        );
        assert_eq!(
            problem(json!({"sidecars": [{"name": 3}]})),
            "sidecars[0].name: must be a string (a glob pattern)"
        );
        assert_eq!(
            problem(json!({"setupInitContainers": "x"})),
            "setupInitContainers: must be a list"
        );
        assert_eq!(
            problem(json!({"sidecarAnnotation": 1})),
            "sidecarAnnotation: must be a string"
        );
        assert_eq!(
            problem(json!({"terminationGracePeriod": 5})),
            "terminationGracePeriod: must be an object"
        );
        assert_eq!(
            problem(json!({"legacySidecars": "delete"})),
            "legacySidecars: \"delete\" must be one of: convert, reject, warn"
        );
        assert_eq!(
            problem(json!({"startupProbe": true})),
            "startupProbe: must be one of: derive, require, ignore"
        );
        assert_eq!(
            problem(json!({"terminationGracePeriod": {"onViolation": "ignore"}})),
            "terminationGracePeriod.onViolation: \"ignore\" must be one of: adjust, reject"
        );
    }

    #[test]
    fn numbers_must_be_non_negative_integers() {
        for bad in [
            json!(-1),
            json!(1.5),
            json!("10"),
            serde_json::from_str::<Value>("10.0").unwrap(),
            json!(u64::MAX),
        ] {
            let message = problem(json!({"terminationGracePeriod": {"minSeconds": bad}}));
            assert!(
                message.starts_with("terminationGracePeriod.minSeconds: must be an integer from 0"),
                "{message}"
            );
        }
        assert!(
            problem(json!({"startupProbeWindowSeconds": -5}))
                .starts_with("startupProbeWindowSeconds: must be an integer")
        );
        assert!(
            problem(json!({"terminationGracePeriod": {"sidecarShutdownSeconds": -1}}))
                .starts_with("terminationGracePeriod.sidecarShutdownSeconds")
        );
        assert!(
            problem(json!({"terminationGracePeriod": {"appShutdownSeconds": 2.5}}))
                .starts_with("terminationGracePeriod.appShutdownSeconds")
        );
    }

    #[test]
    fn min_above_max_names_both() {
        assert_eq!(
            problem(json!({"terminationGracePeriod": {"minSeconds": 90, "maxSeconds": 60}})),
            "terminationGracePeriod.minSeconds: 90 is above terminationGracePeriod.maxSeconds 60"
        );
        assert!(
            Settings::from_value(
                &json!({"terminationGracePeriod": {"minSeconds": 60, "maxSeconds": 60}})
            )
            .is_ok()
        );
    }

    #[test]
    fn matchers_need_a_field_and_valid_globs() {
        assert_eq!(
            problem(json!({"sidecars": [{}]})),
            "sidecars[0]: needs `name`, `image` or both"
        );
        assert_eq!(
            problem(json!({"sidecars": [{"name": null}]})),
            "sidecars[0]: needs `name`, `image` or both"
        );
        assert_eq!(
            problem(json!({"sidecars": [{"name": "envoy"}, {"image": ""}]})),
            "sidecars[1].image: must be a non-empty glob pattern"
        );
        assert_eq!(
            problem(json!({"sidecars": [{"image": "  "}]})),
            "sidecars[0].image: must be a non-empty glob pattern"
        );
        assert!(
            problem(json!({"setupInitContainers": ["istio-init", "[a-z]-init"]}))
                .starts_with("setupInitContainers[1]: ")
        );
    }

    #[test]
    fn annotation_keys_follow_kubernetes_qualified_names() {
        for good in [
            "sidecars",
            "example.com/sidecars",
            "sidecar-lifecycle/containers",
            "a.b-c/x_y.z",
        ] {
            assert!(
                Settings::from_value(&json!({"sidecarAnnotation": good})).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "/x",
            "Example.com/x",
            "example.com/",
            "-x",
            "x-",
            "a/b/c",
            "has space",
            &"n".repeat(64),
            "exa_mple.com/x",
        ] {
            let message = problem(json!({"sidecarAnnotation": bad}));
            assert!(
                message.starts_with("sidecarAnnotation: "),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn an_empty_string_for_a_number_or_a_choice_means_its_default() {
        let settings = Settings::from_value(&json!({
            "legacySidecars": "", "startupProbe": "", "startupProbeWindowSeconds": "",
            "startupProbePeriodSeconds": "",
            "terminationGracePeriod": {"minSeconds": "", "maxSeconds": "", "sidecarShutdownSeconds": "",
                "appShutdownSeconds": "", "onViolation": ""}
        }))
        .unwrap();
        assert_eq!(settings.legacy_sidecars, LegacySidecars::Convert);
        assert_eq!(settings.startup_probe_window_seconds, 300);
        assert_eq!(settings.startup_probe_period_seconds, 1);
        assert_eq!(settings.termination_grace_period.min_seconds, None);
        assert_eq!(
            settings.termination_grace_period.sidecar_shutdown_seconds,
            5
        );
        // a bool or a list is neither a number nor a choice
        assert!(problem(json!({"builtinSidecars": ""})).starts_with("builtinSidecars: must be"));
        assert_eq!(
            problem(json!({"nativeInjection": ""})),
            "nativeInjection: must be true or false"
        );
        // white space is not a cleared field
        assert!(
            problem(json!({"startupProbePeriodSeconds": " "}))
                .starts_with("startupProbePeriodSeconds: ")
        );
    }

    #[test]
    fn the_two_annotation_keys_must_differ_unless_one_is_off() {
        let same = "standardAnnotation: \"sidecar-lifecycle/containers\" is also sidecarAnnotation";
        assert!(
            problem(json!({"standardAnnotation": "sidecar-lifecycle/containers"}))
                .starts_with(same)
        );
        assert!(
            problem(json!({"sidecarAnnotation": "sidecar-lifecycle/standard-containers"}))
                .starts_with("standardAnnotation: \"sidecar-lifecycle/standard-containers\" is also sidecarAnnotation")
        );
        assert!(
            problem(
                json!({"sidecarAnnotation": "example.com/x", "standardAnnotation": "example.com/x"})
            )
            .contains("must differ")
        );
        let off = Settings::from_value(
            &json!({"standardAnnotation": "sidecar-lifecycle/containers", "sidecarAnnotation": ""}),
        )
        .unwrap();
        assert_eq!(off.sidecar_annotation, None);
        let both_off =
            Settings::from_value(&json!({"standardAnnotation": "", "sidecarAnnotation": ""}))
                .unwrap();
        assert_eq!(both_off.standard_annotation, None);
        assert!(
            problem(json!({"standardAnnotation": "Not Valid"})).starts_with("standardAnnotation: ")
        );
        assert!(
            problem(json!({"startupProbePeriodSeconds": -1}))
                .starts_with("startupProbePeriodSeconds: ")
        );
        assert!(
            problem(json!({"startupProbePeriodSeconds": "5"}))
                .starts_with("startupProbePeriodSeconds: ")
        );
    }
}
