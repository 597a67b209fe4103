//! What a run asks of its slow tests, read from the environment, and what
//! becomes of a test that cannot run.
//!
//! | variable | set by | effect |
//! | --- | --- | --- |
//! | `PERPLEX_TEST_TIER=quick` | `scripts/test --quick` | every slow test is ignored ("quick tier") |
//! | `PERPLEX_TEST_FETCHED=1` | the full tier of `scripts/test`, after fetching | a missing fetched resource (demo model, real tokenizers) fails its test |
//! | `CI` (any value but empty, `0`, `false`) | CI | every missing resource fails its test, the shared reference data included |
//!
//! Otherwise a test whose resource is missing is ignored, naming what is
//! missing and how to get it. A CPU that lacks a feature a test needs
//! ignores it in every case: no machine can be made to have it.

use crate::slow::{Origin, Resource};

/// Names the tier: `quick` or `full` (the default).
pub const TIER_VAR: &str = "PERPLEX_TEST_TIER";
/// Set to `1` once the fetch scripts have run.
pub const FETCHED_VAR: &str = "PERPLEX_TEST_FETCHED";
/// Set by CI services.
pub const CI_VAR: &str = "CI";

/// The run's demands, from the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// The quick tier: slow tests are not run.
    pub quick: bool,
    /// Under CI: every resource is required.
    pub ci: bool,
    /// The fetch scripts ran: fetched resources are required.
    pub fetched: bool,
}

impl Settings {
    /// Reads the variables in the table above; panics on a tier other than
    /// `quick` or `full`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let quick = match var(TIER_VAR).as_str() {
            "quick" => true,
            "" | "full" => false,
            other => panic!("{TIER_VAR} is {other:?}: use quick or full"),
        };
        Settings {
            quick,
            ci: !matches!(var(CI_VAR).as_str(), "" | "0" | "false"),
            fetched: var(FETCHED_VAR) == "1",
        }
    }

    /// Why this run must have `resource`, if it must.
    pub fn requires(&self, resource: &Resource) -> Option<&'static str> {
        if self.ci {
            Some("CI is set")
        } else if self.fetched && matches!(resource.origin(), Origin::Fetched(_)) {
            Some("scripts/test fetched it")
        } else {
            None
        }
    }
}

/// What becomes of one slow test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Everything it needs is here.
    Run,
    /// Reported as ignored, with the reason.
    Ignore(String),
    /// Reported as failed, with the reason: a required resource is missing.
    Fail(String),
}

/// Decides for a test that lacks the CPU features `cpu_missing` and the
/// resources `missing`.
pub fn decide(settings: &Settings, cpu_missing: &[&str], missing: &[&Resource]) -> Decision {
    if settings.quick {
        return Decision::Ignore("quick tier: the full tier (scripts/test) runs it".into());
    }
    if !cpu_missing.is_empty() {
        return Decision::Ignore(format!("this CPU lacks {}", cpu_missing.join(", ")));
    }
    let required: Vec<&Resource> = missing
        .iter()
        .copied()
        .filter(|r| settings.requires(r).is_some())
        .collect();
    if let Some(first) = required.first() {
        let why = settings.requires(first).unwrap_or_default();
        return Decision::Fail(format!("{}; required because {why}", describe(&required)));
    }
    if missing.is_empty() {
        Decision::Run
    } else {
        Decision::Ignore(describe(missing))
    }
}

/// "missing A, B (how to get them); C (how to get it)": the paths, grouped
/// by how to get them.
fn describe(missing: &[&Resource]) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in missing {
        let path = r.path().display().to_string();
        match groups.iter_mut().find(|(hint, _)| *hint == r.hint()) {
            Some((_, paths)) => paths.push(path),
            None => groups.push((r.hint(), vec![path])),
        }
    }
    let groups: Vec<String> = groups
        .into_iter()
        .map(|(hint, paths)| format!("{} ({hint})", paths.join(", ")))
        .collect();
    format!("missing {}", groups.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent() -> (Resource, Resource) {
        let dir = std::env::temp_dir().join("perplex-testkit-absent");
        (
            Resource::new(dir.join("model.gguf"), Origin::Fetched("scripts/fetch.sh")),
            Resource::new(dir.join("ids.npy"), Origin::Shared),
        )
    }

    #[test]
    fn a_missing_resource_is_ignored_outside_ci() {
        let (fetched, shared) = absent();
        let d = decide(&Settings::default(), &[], &[&fetched, &shared]);
        let Decision::Ignore(why) = d else {
            panic!("{d:?}")
        };
        assert!(why.starts_with("missing "), "{why}");
        assert!(
            why.contains("model.gguf (fetched by scripts/fetch.sh"),
            "{why}"
        );
        assert!(why.contains("ids.npy (the shared reference data"), "{why}");
    }

    #[test]
    fn ci_requires_every_resource_and_fetching_only_the_fetched() {
        let (fetched, shared) = absent();
        let ci = Settings {
            ci: true,
            ..Settings::default()
        };
        assert!(matches!(decide(&ci, &[], &[&shared]), Decision::Fail(_)));
        let after_fetch = Settings {
            fetched: true,
            ..Settings::default()
        };
        let d = decide(&after_fetch, &[], &[&fetched, &shared]);
        let Decision::Fail(why) = d else {
            panic!("{d:?}")
        };
        assert!(
            why.ends_with("required because scripts/test fetched it"),
            "{why}"
        );
        assert!(!why.contains("ids.npy"), "{why}");
        assert!(matches!(
            decide(&after_fetch, &[], &[&shared]),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn the_quick_tier_and_a_missing_cpu_feature_ignore_even_under_ci() {
        let (fetched, _) = absent();
        let quick = Settings {
            quick: true,
            ci: true,
            fetched: true,
        };
        assert!(matches!(decide(&quick, &[], &[]), Decision::Ignore(_)));
        let ci = Settings {
            ci: true,
            ..Settings::default()
        };
        assert_eq!(
            decide(&ci, &["AVX-512 BF16"], &[&fetched]),
            Decision::Ignore("this CPU lacks AVX-512 BF16".into())
        );
        assert_eq!(decide(&ci, &[], &[]), Decision::Run);
    }
}
