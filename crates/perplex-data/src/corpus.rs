//! Corpora.
