//! GGUF metadata to GgufVocab.
