//! A corpus made ready for one tokenizer: the documents as evaluated
//! (joined into one when asked), their token ids, and the corpus identity
//! every report records.
//!
//! The identity's hash is blake3 over the evaluated documents' text, each
//! prefixed by its length in bytes (little-endian u64), so that different
//! splits of the same bytes hash differently; it does not depend on the
//! tokenizer, so models with different tokenizers share it.

use std::borrow::Cow;

use perplex_core::report::{CorpusIdentity, Hash};

use crate::corpus::{self, Document};
use crate::counts::{byte_count, word_count};
use crate::inputs::Corpus;
use crate::tokenizer::{TextTokenizer, TokenizerError};

/// The corpus hash of the module docs over `documents`.
pub fn hash_documents(documents: &[Document]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    for d in documents {
        hasher.update(&(d.text.len() as u64).to_le_bytes());
        hasher.update(d.text.as_bytes());
    }
    Hash {
        algorithm: "blake3".into(),
        value: hasher.finalize().to_hex().to_string(),
    }
}

/// A document the tokenizer could not encode.
#[derive(Debug, thiserror::Error)]
#[error("could not tokenise document {source_name}")]
pub struct TokenizeError {
    /// The document's source.
    pub source_name: String,
    /// The tokenizer's error.
    #[source]
    pub source: TokenizerError,
}

impl TokenizeError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        self.source.hint()
    }
}

/// A [`Corpus`] tokenised by one tokenizer (BOS excluded: the window planner
/// adds it by policy).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedCorpus<'c> {
    corpus: Cow<'c, Corpus>,
    join: Option<String>,
    documents: Cow<'c, [Document]>,
    tokens: Vec<Vec<u32>>,
    /// Of `documents`, computed once: every report of every model records it.
    hash: Hash,
}

impl<'c> TokenizedCorpus<'c> {
    /// Tokenises `corpus` with `tokenizer`; with `join`, its non-empty
    /// documents are first concatenated into one, separated by `join`.
    pub fn new(
        tokenizer: &TextTokenizer,
        corpus: &'c Corpus,
        join: Option<&str>,
    ) -> Result<Self, TokenizeError> {
        let documents: Cow<'c, [Document]> = match join {
            Some(separator) => {
                let non_empty: Vec<Document> = corpus
                    .documents
                    .iter()
                    .filter(|d| !d.is_empty())
                    .cloned()
                    .collect();
                vec![corpus::join(&non_empty, separator)].into()
            }
            None => corpus.documents.as_slice().into(),
        };
        let tokens = documents
            .iter()
            .map(|d| {
                tokenizer.encode(&d.text).map_err(|source| TokenizeError {
                    source_name: d.source.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TokenizedCorpus {
            corpus: Cow::Borrowed(corpus),
            join: join.map(str::to_string),
            hash: hash_documents(&documents),
            documents,
            tokens,
        })
    }

    /// The same, owning its corpus (e.g. to keep it across evaluations).
    pub fn into_owned(self) -> TokenizedCorpus<'static> {
        TokenizedCorpus {
            corpus: Cow::Owned(self.corpus.into_owned()),
            join: self.join,
            documents: Cow::Owned(self.documents.into_owned()),
            tokens: self.tokens,
            hash: self.hash,
        }
    }

    /// The documents as evaluated: the corpus's, or the one they were joined into.
    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// Token ids of each evaluated document.
    pub fn tokens(&self) -> &[Vec<u32>] {
        &self.tokens
    }

    /// UTF-8 bytes of evaluated document `i`.
    pub fn bytes(&self, i: usize) -> u64 {
        byte_count(&self.documents[i].text)
    }

    /// Words of evaluated document `i` (whitespace-separated, as Python's `split()`).
    pub fn words(&self, i: usize) -> u64 {
        word_count(&self.documents[i].text)
    }

    /// Where the first evaluated document whose ids differ from `other`'s
    /// is, and at which token, in words; `None` when every id agrees.
    pub fn first_difference(&self, other: &TokenizedCorpus<'_>) -> Option<String> {
        for (doc, (x, y)) in self.tokens.iter().zip(&other.tokens).enumerate() {
            if x != y {
                let at = x.iter().zip(y).take_while(|(p, q)| p == q).count();
                return Some(format!(
                    "document {doc} ({}) first differs at token {at}",
                    self.documents[doc].source
                ));
            }
        }
        None
    }

    /// The hash of the evaluated text (see the module docs).
    pub fn hash(&self) -> &Hash {
        &self.hash
    }

    /// The corpus it was made from (before any join).
    pub fn source(&self) -> &Corpus {
        &self.corpus
    }

    /// The corpus identity a report records.
    pub fn identity(&self) -> CorpusIdentity {
        CorpusIdentity {
            sources: self.corpus.sources.clone(),
            split: self.corpus.split.clone(),
            documents: self.corpus.documents.len(),
            empty_documents: self.corpus.empty_documents(),
            joined: self.join.is_some(),
            separator: self.join.clone(),
            hash: self.hash.clone(),
        }
    }
}
