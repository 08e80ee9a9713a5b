//! The set of stage kinds a configuration may name.
//!
//! The binary uses [`Registry::builtin`], the kinds of the `stages` crate; tests build
//! registries of their own small kinds to exercise the engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use stages::kind::StageKind;

/// Stage kinds by name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, Arc<dyn StageKind>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every kind of the `stages` crate.
    pub fn builtin() -> Self {
        let mut registry = Self::new();
        for kind in stages::catalog() {
            registry.insert(kind);
        }
        registry
    }

    /// Adds (or replaces) a kind.
    pub fn insert(&mut self, kind: Arc<dyn StageKind>) {
        self.kinds.insert(kind.name().to_owned(), kind);
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn StageKind>> {
        self.kinds.get(name)
    }

    /// Every kind name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }
}
