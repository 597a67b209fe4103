//! What a run reads: the inputs a user names (texts, text files, stdin,
//! JSONL files) turned into one [`Corpus`] that remembers its sources and
//! how they were split.
//!
//! The order is fixed so that a corpus and its hash depend only on the
//! inputs: command-line texts first, then text files (stdin where `-` is
//! named, or when nothing else is), then JSONL files. A corpus with JSONL
//! inputs is split `jsonl:<field>`; otherwise by the [`Split`] of its text
//! files.
//!
//! ```
//! use perplex_data::inputs::Inputs;
//!
//! let corpus = Inputs::texts(["The cat sat.", ""]).read()?;
//! assert_eq!(corpus.documents.len(), 2);
//! assert_eq!((corpus.sources.as_slice(), corpus.split.as_str()), (&["arguments".to_string()][..], "whole"));
//! # Ok::<(), perplex_data::corpus::CorpusError>(())
//! ```

use std::path::{Path, PathBuf};

use crate::corpus::{self, CorpusError, Document, Split};

/// The documents to evaluate and where they came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Corpus {
    /// Documents in input order (empty ones included: they are counted).
    pub documents: Vec<Document>,
    /// Input sources in order (`arguments`, `stdin`, file paths).
    pub sources: Vec<String>,
    /// How sources were split into documents (`whole`, `lines`,
    /// `paragraphs`, `jsonl:<field>`).
    pub split: String,
}

impl Corpus {
    /// A corpus of in-memory texts, one document each.
    pub fn from_texts<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Self {
        Self {
            documents: corpus::from_args(texts),
            sources: vec!["arguments".into()],
            split: Split::Whole.name().into(),
        }
    }

    /// Documents with no text at all.
    pub fn empty_documents(&self) -> usize {
        self.documents.iter().filter(|d| d.is_empty()).count()
    }
}

/// The inputs of a run, read by [`Inputs::read`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inputs {
    /// Texts, one document each.
    pub texts: Vec<String>,
    /// Text files (`-` is stdin), cut by `split`.
    pub files: Vec<PathBuf>,
    /// How text files and stdin become documents.
    pub split: Split,
    /// JSON Lines files; the text of each record is its `field`.
    pub jsonl: Vec<PathBuf>,
    /// The JSONL field holding the text.
    pub field: String,
}

impl Inputs {
    /// In-memory texts only.
    pub fn texts<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Self {
        Inputs {
            texts: texts.into_iter().map(Into::into).collect(),
            field: "text".into(),
            ..Inputs::default()
        }
    }

    /// Whether [`Inputs::read`] reads stdin: `-` is named, or no input is.
    pub fn reads_stdin(&self) -> bool {
        self.is_empty() || self.files.iter().any(|p| p == Path::new("-"))
    }

    /// Whether no input is named (stdin is then read).
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty() && self.files.is_empty() && self.jsonl.is_empty()
    }

    /// Reads every input, in the order of the module docs.
    pub fn read(&self) -> Result<Corpus, CorpusError> {
        let mut documents = Vec::new();
        let mut sources = Vec::new();
        if !self.texts.is_empty() {
            sources.push("arguments".to_string());
            documents.extend(corpus::from_args(&self.texts));
        }
        let stdin_alone = self.is_empty().then_some(Path::new("-"));
        for path in self.files.iter().map(PathBuf::as_path).chain(stdin_alone) {
            if path == Path::new("-") {
                sources.push("stdin".to_string());
                documents.extend(corpus::read_stdin(self.split)?);
            } else {
                sources.push(path.display().to_string());
                documents.extend(corpus::read_file(path, self.split)?);
            }
        }
        for path in &self.jsonl {
            sources.push(path.display().to_string());
            documents.extend(corpus::read_jsonl(path, &self.field)?);
        }
        let split = if self.jsonl.is_empty() {
            self.split.name().to_string()
        } else {
            format!("jsonl:{}", self.field)
        };
        Ok(Corpus {
            documents,
            sources,
            split,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_then_files_then_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let (txt, jsonl) = (dir.path().join("a.txt"), dir.path().join("b.jsonl"));
        std::fs::write(&txt, "one\ntwo\n").unwrap();
        std::fs::write(&jsonl, "{\"body\": \"three\"}\n").unwrap();
        let inputs = Inputs {
            texts: vec!["zero".into()],
            files: vec![txt.clone()],
            split: Split::Lines,
            jsonl: vec![jsonl.clone()],
            field: "body".into(),
        };
        assert!(!inputs.reads_stdin());
        let corpus = inputs.read().unwrap();
        let texts: Vec<&str> = corpus.documents.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, ["zero", "one", "two", "three"]);
        assert_eq!(corpus.split, "jsonl:body");
        assert_eq!(
            corpus.sources,
            [
                "arguments".to_string(),
                txt.display().to_string(),
                jsonl.display().to_string()
            ]
        );
    }

    #[test]
    fn no_input_means_stdin() {
        assert!(Inputs::default().reads_stdin());
        assert!(!Inputs::texts(["x"]).reads_stdin());
    }
}
