//! Evaluating perplexity from inside a training loop.
//!
//! The "model" here is a bigram table trained by counting, standing in for
//! whatever a Rust training loop keeps in memory: anything that implements
//! perplex's `CausalLm` seam can be scored. The evaluation text is tokenised
//! once; every few steps the evaluator scores it with the model as it is,
//! and at the end prints the curve and what it says.
//!
//! ```sh
//! cargo run --example training_loop -p perplex
//! ```

use std::path::Path;

use perplex::core::lm::{validate_batch, LmError, LogitTiles, ModelInfo, TokenScore, WindowRef};
use perplex::core::report::ModelIdentity;
use perplex::core::{CausalLm, Protocol};
use perplex::data::tokenizer::TextTokenizer;
use perplex::training::TrainingEvaluator;
use perplex::{Corpus, EvalOptions};

/// Add-one-smoothed bigram counts.
struct Bigram {
    info: ModelInfo,
    counts: Vec<f64>,
}

impl Bigram {
    fn new(vocab: usize) -> Self {
        Bigram {
            info: ModelInfo {
                vocab_size: vocab,
                max_context: None,
            },
            counts: vec![1.0; vocab * vocab],
        }
    }

    /// One "training step": count the bigrams of `tokens`.
    fn train(&mut self, tokens: &[u32]) {
        let v = self.info.vocab_size;
        for w in tokens.windows(2) {
            self.counts[w[0] as usize * v + w[1] as usize] += 1.0;
        }
    }

    fn row(&self, prev: u32) -> &[f64] {
        let v = self.info.vocab_size;
        &self.counts[prev as usize * v..(prev as usize + 1) * v]
    }
}

struct BigramLogits<'a> {
    model: &'a Bigram,
    previous: Vec<u32>,
}

impl LogitTiles for BigramLogits<'_> {
    fn positions(&self) -> usize {
        self.previous.len()
    }
    fn tile(&self, first: usize, len: usize, out: &mut Vec<f32>) -> Result<(), LmError> {
        out.clear();
        for &p in &self.previous {
            out.extend(
                self.model.row(p)[first..first + len]
                    .iter()
                    .map(|c| c.ln() as f32),
            );
        }
        Ok(())
    }
}

impl CausalLm for Bigram {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn score_batch(&mut self, batch: &[WindowRef<'_>]) -> Result<Vec<Vec<TokenScore>>, LmError> {
        validate_batch(&self.info, batch)?;
        Ok(batch
            .iter()
            .map(|w| {
                (w.score_from..w.tokens.len())
                    .map(|i| {
                        let row = self.row(w.tokens[i - 1]);
                        let total: f64 = row.iter().sum();
                        let argmax = row
                            .iter()
                            .enumerate()
                            .fold((0, f64::MIN), |b, (j, &c)| if c > b.1 { (j, c) } else { b })
                            .0 as u32;
                        TokenScore {
                            nll: -(row[w.tokens[i] as usize] / total).ln(),
                            argmax,
                        }
                    })
                    .collect()
            })
            .collect())
    }

    fn logits<'a>(
        &'a mut self,
        batch: &[WindowRef<'_>],
    ) -> Result<Box<dyn LogitTiles + 'a>, LmError> {
        validate_batch(&self.info, batch)?;
        let previous = batch
            .iter()
            .flat_map(|w| (w.score_from..w.tokens.len()).map(move |i| w.tokens[i - 1]))
            .collect();
        Ok(Box::new(BigramLogits {
            model: self,
            previous,
        }))
    }
}

#[allow(clippy::print_stdout)] // an example prints its results
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tokenizer = TextTokenizer::from_hf_folder(&root.join("tests/fixtures/tiny-llama"))?;
    let training_text = "The bakery opens at six every morning, and the line reaches the corner \
        by seven. The owner bakes bread all day. The market fills the square on Tuesdays. \
        Farmers bring apples, pears and honey to the market, and the bakery sells bread.";
    let eval_text = "On Tuesdays the market fills the square, and the bakery opens early.";

    let mut evaluator = TrainingEvaluator::new(
        tokenizer.clone(),
        Corpus::from_texts([eval_text]),
        EvalOptions::new(Protocol::Chunks { context: 64 })?,
        1, // the bigram model below scores on this thread
    )?;
    let identity = ModelIdentity {
        parameters: (tokenizer.vocab_size() * tokenizer.vocab_size()) as u64,
        weights: "f64".into(),
        ..ModelIdentity::in_memory("bigram (in memory)", "bigram")
    };
    let mut model = Bigram::new(tokenizer.vocab_size());
    let sentences: Vec<Vec<u32>> = training_text
        .split(". ")
        .map(|s| tokenizer.encode(s))
        .collect::<Result<_, _>>()?;
    for step in 1..=12u64 {
        let batch = &sentences[(step as usize - 1) % sentences.len()];
        model.train(batch);
        if step % 3 == 0 {
            let report = evaluator.evaluate(step, &mut model, &identity, None)?;
            println!(
                "step {step:>2}: perplexity {:.2}",
                report.summary.perplexity.unwrap_or(f64::NAN)
            );
        }
    }
    let curve = evaluator.curve("example");
    for d in &curve.diagnoses {
        println!("diagnosis: {}", d.message);
    }
    Ok(())
}
