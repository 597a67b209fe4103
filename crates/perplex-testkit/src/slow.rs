//! Slow tests: tests of the full tier that may need resources a checkout
//! lacks, run by a `harness = false` test binary through [`run_tests`] so
//! that each decides at run time whether it runs, is ignored (with the
//! reason, shown by cargo) or fails ([`crate::tier`] says which).

use std::fmt;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::tier::{decide, Decision, Settings};
use crate::{shared_dir, workspace};

/// The demo model, relative to the workspace root.
const DEMO_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where a resource comes from, which decides when its absence fails a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Fetched into the checkout by this script (the full tier of
    /// `scripts/test` runs it first).
    Fetched(&'static str),
    /// In the shared reference folder ([`shared_dir`]).
    Shared,
}

/// A file a test needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    path: PathBuf,
    origin: Origin,
}

impl Resource {
    /// `path`, from `origin`.
    pub fn new(path: PathBuf, origin: Origin) -> Self {
        Resource { path, origin }
    }

    /// The demo model, SmolLM2-135M-Instruct Q4_1 (`scripts/fetch-demo-model.sh`).
    pub fn demo_model() -> Self {
        Self::new(
            workspace().join(DEMO_MODEL),
            Origin::Fetched("scripts/fetch-demo-model.sh"),
        )
    }

    /// A real tokenizer file, `rel` to the workspace root
    /// (`scripts/fetch-real-tokenizers.sh` puts them under `models/tokenizers/`).
    pub fn real_tokenizer(rel: &str) -> Self {
        Self::new(
            workspace().join(rel),
            Origin::Fetched("scripts/fetch-real-tokenizers.sh"),
        )
    }

    /// A file of the shared reference data, `<shared>/reference/<file>`.
    pub fn reference(file: &str) -> Self {
        Self::new(shared_dir().join("reference").join(file), Origin::Shared)
    }

    /// Where it is (or would be).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where it comes from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether it is there.
    pub fn is_present(&self) -> bool {
        self.path.is_file()
    }

    /// How to get it, for people.
    pub fn hint(&self) -> String {
        match self.origin {
            Origin::Fetched(script) => format!("fetched by {script}, which scripts/test runs"),
            Origin::Shared => format!(
                "the shared reference data: ../shared beside the checkout, or ${}",
                crate::SHARED_VAR
            ),
        }
    }
}

/// One test of the full tier, with what it needs.
pub struct SlowTest {
    name: String,
    body: Box<dyn FnOnce() + Send>,
    needs: Vec<Resource>,
    cpu_missing: Vec<&'static str>,
}

impl fmt::Debug for SlowTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlowTest")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .field("cpu_missing", &self.cpu_missing)
            .finish_non_exhaustive()
    }
}

impl SlowTest {
    /// A test named `name` that runs `body` (a panic fails it).
    pub fn new(name: &str, body: impl FnOnce() + Send + 'static) -> Self {
        SlowTest {
            name: name.to_owned(),
            body: Box::new(body),
            needs: Vec::new(),
            cpu_missing: Vec::new(),
        }
    }

    /// It needs each of `resources`.
    pub fn needs(mut self, resources: impl IntoIterator<Item = Resource>) -> Self {
        self.needs.extend(resources);
        self
    }

    /// It needs the CPU feature `feature` (named for people), which this
    /// CPU has when `present`.
    pub fn needs_cpu(mut self, feature: &'static str, present: bool) -> Self {
        if !present {
            self.cpu_missing.push(feature);
        }
        self
    }

    fn into_trial(self, settings: Settings) -> Trial {
        let SlowTest {
            name,
            body,
            needs,
            cpu_missing,
        } = self;
        // Decided when the test runs, not when it is listed or filtered out.
        Trial::ignorable_test(name, move || {
            let missing: Vec<&Resource> = needs.iter().filter(|r| !r.is_present()).collect();
            match decide(&settings, &cpu_missing, &missing) {
                Decision::Run => {
                    body();
                    Ok(Completion::Completed)
                }
                Decision::Ignore(reason) => Ok(Completion::ignored_with(reason)),
                Decision::Fail(reason) => Err(Failed::from(reason)),
            }
        })
    }
}

/// The `main` of a `harness = false` test binary: runs `tests` with the
/// command-line options of cargo's own harness (filters, `--skip`,
/// `--test-threads`, `--list`; output is not captured), then exits with the
/// harness's status.
pub fn run_tests(tests: Vec<SlowTest>) -> ! {
    let settings = Settings::from_env();
    let trials = tests.into_iter().map(|t| t.into_trial(settings)).collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}
