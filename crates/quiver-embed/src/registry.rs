//! The models Quiver runs, by name: the one place that knows a model's canonical name, the other
//! names people use for it and the dimension of its vectors. The command line, the server and a
//! collection's recorded embedder all go through [`lookup`].

/// A model Quiver can embed text with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The name a collection records (lowercase).
    pub name: &'static str,
    /// Other names for it, compared without case (Hugging Face ids, Qdrant's document model).
    pub aliases: &'static [&'static str],
    /// The dimension of its vectors.
    pub dim: usize,
}

/// Every model Quiver runs.
pub const MODELS: &[ModelInfo] = &[ModelInfo {
    name: crate::minilm::MODEL_NAME,
    aliases: &["sentence-transformers/all-minilm-l6-v2"],
    dim: 384,
}];

/// The model `name` stands for (its name or an alias, any case).
pub fn lookup(name: &str) -> Option<&'static ModelInfo> {
    let name = name.trim();
    MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name) || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// The models' names, for error messages.
pub fn names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_in_any_case() {
        for n in [
            "all-minilm-l6-v2",
            "all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2",
            " ALL-MINILM-L6-V2 ",
        ] {
            assert_eq!(lookup(n).map(|m| (m.name, m.dim)), Some(("all-minilm-l6-v2", 384)), "{n}");
        }
        assert_eq!(lookup("gpt-9"), None);
        assert_eq!(lookup("sentence-transformers/"), None);
    }
}
