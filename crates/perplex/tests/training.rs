//! The in-training-loop evaluator scores the same tokens as `eval` each time
//! and keeps the curve with its diagnoses.

mod common;

use perplex::core::mock::{HashLm, UniformLm};
use perplex::core::report::ModelIdentity;
use perplex::core::Protocol;
use perplex::data::tokenizer::TextTokenizer;
use perplex::eval::NullSink;
use perplex::training::TrainingEvaluator;
use perplex::{Corpus, EvalOptions};

fn identity() -> ModelIdentity {
    ModelIdentity::in_memory("in-memory", "mock")
}

#[test]
fn each_call_equals_eval_and_the_curve_is_diagnosed() {
    let tokenizer =
        TextTokenizer::from_tokenizer_json(&common::fixture("tiny-llama/tokenizer.json")).unwrap();
    let corpus = Corpus::from_texts([
        "The river freezes in winter, and people skate near the old mill.",
        "Good morning, Tomas.",
    ]);
    let options = EvalOptions::new(Protocol::Chunks { context: 8 }).unwrap();
    let mut evaluator =
        TrainingEvaluator::new(tokenizer.clone(), corpus.clone(), options.clone(), 1).unwrap();
    let vocab = tokenizer.vocab_size();
    let mut model = HashLm::new(vocab, None);
    let report = evaluator
        .evaluate(10, &mut model, &identity(), Some(3.5))
        .unwrap();
    let direct = perplex::evaluate(
        &mut HashLm::new(vocab, None),
        &tokenizer,
        &identity(),
        &corpus,
        &options,
        &mut NullSink,
    )
    .unwrap();
    assert_eq!(report.summary.nll_sum, direct.summary.nll_sum);
    assert_eq!(report.documents, direct.documents);
    // a model that does not learn: flat curve
    for step in [20, 30, 40] {
        evaluator
            .evaluate(
                step,
                &mut UniformLm::new(vocab, None),
                &identity(),
                Some(3.0),
            )
            .unwrap();
    }
    let curve = evaluator.curve("unit");
    let steps: Vec<u64> = curve.points.iter().map(|p| p.step).collect();
    assert_eq!(steps, [10, 20, 30, 40]);
    assert_eq!(curve.trainer.len(), 4);
    let codes: Vec<&str> = curve.diagnoses.iter().map(|d| d.code.as_str()).collect();
    assert!(codes.contains(&"not-decreasing"), "{codes:?}");
}
