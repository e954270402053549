//! The glob dialect of SPEC §3: `*` matches any run of characters (`/`
//! included), `?` exactly one; anchored at both ends; case-sensitive.

/// A validated glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

/// Characters that other glob dialects treat as special. Neither container
/// names nor image references can contain them, so a pattern using them is a
/// mistake better reported than silently never matching.
const FOREIGN_SYNTAX: &[char] = &['[', ']', '{', '}', '\\', '!'];

impl Glob {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<Glob, String> {
        if pattern.trim().is_empty() {
            return Err("must be a non-empty glob pattern".to_string());
        }
        if pattern.chars().any(char::is_whitespace) {
            return Err(format!("{pattern:?} contains white space"));
        }
        if let Some(c) = pattern.chars().find(|c| FOREIGN_SYNTAX.contains(c)) {
            return Err(format!(
                "{pattern:?} uses {c:?}: only `*` and `?` are wildcards here"
            ));
        }
        Ok(Glob {
            pattern: pattern.to_string(),
        })
    }

    pub fn matches(&self, text: &str) -> bool {
        matches(&self.pattern, text)
    }
}

/// Whole-string match of `text` against `pattern` with the usual
/// single-backtrack wildcard algorithm: linear in practice, never
/// exponential, and without allocating, as the built-in names are matched
/// against every container.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Positions are byte offsets; `?` consumes one whole UTF-8 character.
    let char_len = |at: usize| {
        let lead = text[at];
        match lead {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        }
        .min(text.len() - at)
    };
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                last_star = Some((p, t));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                t += char_len(t);
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match last_star {
                Some((star_p, star_t)) => {
                    let next = star_t + char_len(star_t);
                    p = star_p + 1;
                    t = next;
                    last_star = Some((star_p, next));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Glob::parse(pattern).unwrap().matches(text)
    }

    #[test]
    fn literal_patterns_are_anchored_at_both_ends() {
        assert!(matches("istio-proxy", "istio-proxy"));
        assert!(!matches("istio-proxy", "istio-proxy-2"));
        assert!(!matches("proxy", "istio-proxy"));
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        assert!(matches("*", ""));
        assert!(matches(
            "*fluent-bit*",
            "cr.fluentbit.io/fluent/fluent-bit:3.1.4"
        ));
        assert!(matches("docker.io/*:1.*", "docker.io/istio/proxyv2:1.22.3"));
        assert!(!matches("docker.io/*:1.*", "docker.io/istio/proxyv2:2.0"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(matches("envoy-?", "envoy-1"));
        assert!(!matches("envoy-?", "envoy-"));
        assert!(!matches("envoy-?", "envoy-12"));
    }

    #[test]
    fn question_mark_matches_one_whole_character() {
        assert!(matches("envoy-?", "envoy-é"));
        assert!(matches("?-*", "ü-x"));
        assert!(!matches("envoy-??", "envoy-é"));
        assert!(super::matches("consul-dataplane-*", "consul-dataplane-web"));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!matches("Istio-proxy", "istio-proxy"));
    }

    #[test]
    fn backtracking_stays_linear_on_pathological_input() {
        let text = "a".repeat(10_000);
        assert!(!matches("*a*a*a*a*a*b", &text));
    }

    #[test]
    fn empty_blank_and_foreign_patterns_are_refused() {
        assert!(Glob::parse("").is_err());
        assert!(Glob::parse("   ").is_err());
        assert!(Glob::parse("istio proxy").is_err());
        assert!(
            Glob::parse("istio-[a-z]*")
                .unwrap_err()
                .contains("only `*` and `?`")
        );
        assert!(Glob::parse("{envoy,istio}").is_err());
    }
}
