//! SPEC §8: the verdict, rendered as the ValidationResponse waPC hosts read.

use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use serde_json::Value;

#[derive(Debug)]
pub enum Verdict {
    /// Accepted as it came (no `mutated_object`).
    Accepted { warnings: Vec<String> },
    /// Accepted with the whole changed object.
    Mutated {
        object: Value,
        warnings: Vec<String>,
    },
    /// Rejected; the message lists every problem.
    Rejected {
        problems: Vec<String>,
        warnings: Vec<String>,
    },
}

impl Verdict {
    pub fn untouched() -> Verdict {
        Verdict::Accepted {
            warnings: Vec::new(),
        }
    }

    pub fn rejected(problem: impl Into<String>) -> Verdict {
        Verdict::Rejected {
            problems: vec![problem.into()],
            warnings: Vec::new(),
        }
    }

    pub fn render(self) -> Vec<u8> {
        let nonempty = |warnings: Vec<String>| (!warnings.is_empty()).then_some(warnings);
        let response = match self {
            Verdict::Accepted { warnings } => ValidationResponse {
                accepted: true,
                message: None,
                code: None,
                mutated_object: None,
                audit_annotations: None,
                warnings: nonempty(warnings),
            },
            Verdict::Mutated { object, warnings } => ValidationResponse {
                accepted: true,
                message: None,
                code: None,
                mutated_object: Some(object),
                audit_annotations: None,
                warnings: nonempty(warnings),
            },
            Verdict::Rejected { problems, warnings } => ValidationResponse {
                accepted: false,
                message: Some(rejection_message(&problems)),
                code: None,
                mutated_object: None,
                audit_annotations: None,
                warnings: nonempty(warnings),
            },
        };
        to_json(&response)
    }
}

/// One problem as it is; several numbered, so none hides behind another.
fn rejection_message(problems: &[String]) -> String {
    match problems {
        [only] => only.clone(),
        _ => {
            let listed: Vec<String> = problems
                .iter()
                .enumerate()
                .map(|(index, problem)| format!("({}) {problem}", index + 1))
                .collect();
            format!("{} problems: {}", problems.len(), listed.join("; "))
        }
    }
}

pub fn settings_verdict(result: Result<(), String>) -> Vec<u8> {
    let response = match result {
        Ok(()) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(message) => SettingsValidationResponse {
            valid: false,
            message: Some(message),
        },
    };
    to_json(&response)
}

/// Serializing these plain structs of strings and JSON values cannot fail;
/// should it ever, the host still gets a rejection rather than a trap.
fn to_json<T: serde::Serialize>(response: &T) -> Vec<u8> {
    serde_json::to_vec(response)
        .unwrap_or_else(|_| br#"{"accepted":false,"message":"sidecar-lifecycle-policy could not render its response"}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(verdict: Verdict) -> Value {
        serde_json::from_slice(&verdict.render()).unwrap()
    }

    #[test]
    fn accepted_has_no_mutated_object_and_no_empty_warnings() {
        assert_eq!(
            rendered(Verdict::untouched()),
            json!({"accepted": true, "message": null, "code": null, "mutated_object": null, "audit_annotations": null, "warnings": null})
        );
    }

    #[test]
    fn rejection_lists_every_problem() {
        let verdict = Verdict::Rejected {
            problems: vec!["a is wrong".into(), "b is wrong".into()],
            warnings: vec!["w".into()],
        };
        let response = rendered(verdict);
        assert_eq!(response["accepted"], json!(false));
        assert_eq!(
            response["message"],
            json!("2 problems: (1) a is wrong; (2) b is wrong")
        );
        assert_eq!(response["warnings"], json!(["w"]));
    }

    #[test]
    fn mutation_carries_the_object_and_warnings() {
        let response = rendered(Verdict::Mutated {
            object: json!({"kind": "Pod"}),
            warnings: vec!["changed".into()],
        });
        assert_eq!(response["mutated_object"], json!({"kind": "Pod"}));
        assert_eq!(response["warnings"], json!(["changed"]));
    }

    #[test]
    fn settings_verdicts() {
        assert_eq!(
            serde_json::from_slice::<Value>(&settings_verdict(Ok(()))).unwrap(),
            json!({"valid": true, "message": null})
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&settings_verdict(Err("x: bad".into()))).unwrap(),
            json!({"valid": false, "message": "x: bad"})
        );
    }
}
