//! Model loading and forward passes (skeleton; being written).
#![allow(missing_docs)]
pub mod gguf_vocab;
