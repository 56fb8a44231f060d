//! Environment lookups: the config file's `environment_variables` first (as
//! LiteLLM sets them into the process environment), then the real one.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Env {
    overlay: HashMap<String, String>,
    /// When false, the process environment is not read (tests).
    use_process: bool,
}

impl Env {
    pub fn process() -> Env {
        Env {
            overlay: HashMap::new(),
            use_process: true,
        }
    }

    /// Only the given variables: for tests.
    pub fn fixed(vars: &[(&str, &str)]) -> Env {
        Env {
            overlay: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            use_process: false,
        }
    }

    pub fn set(&mut self, name: String, value: String) {
        self.overlay.insert(name, value);
    }

    /// A non-empty variable.
    pub fn get(&self, name: &str) -> Option<String> {
        self.overlay
            .get(name)
            .cloned()
            .or_else(|| {
                if self.use_process {
                    std::env::var(name).ok()
                } else {
                    None
                }
            })
            .filter(|v| !v.is_empty())
    }

    /// The first of several variables that is set.
    pub fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.get(n))
    }
}
