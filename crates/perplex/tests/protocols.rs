//! Every protocol end to end against transformers: the goldens in
//! `tests/fixtures/goldens.json` ("protocols") were computed by
//! `scripts/make_fixtures.py` with the well-known recipes (transformers'
//! `exp(loss)` on a truncated text, block chunks, the transformers sliding-window guide, llama.cpp's
//! chunking). Here the whole pipeline — tokenizer, planner, engine, model —
//! must give the same windows, the same per-token NLLs (1e-4) and the same
//! corpus figures.

mod common;

use perplex::eval::engine::{plan_corpus, EvalSettings};
use perplex::eval::CollectSink;
use perplex::{Corpus, EvalOptions, Evaluator};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn goldens() -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::fixture("goldens.json")).unwrap())
        .unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn options(case: &Value) -> EvalOptions {
    let (protocol, bos) = common::golden_protocol(case);
    EvalOptions::builder(protocol)
        .bos(bos)
        .batch_size(3)
        .build()
        .unwrap()
}

#[test]
fn every_protocol_matches_transformers() {
    let goldens = goldens();
    let cases = goldens["protocols"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut models: std::collections::HashMap<String, Evaluator> = Default::default();
    for case in cases {
        let model = case["model"].as_str().unwrap();
        let evaluator = models
            .entry(model.to_string())
            .or_insert_with(|| Evaluator::load(common::fixture(model).to_str().unwrap()).unwrap());
        let name = format!(
            "{model} {} {} bos={}",
            case["protocol"], case["params"], case["bos"]
        );
        let texts: Vec<String> = case["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let options = options(case);

        // The planned windows are exactly the model calls the recipe made.
        let tokenizer = &evaluator.model().tokenizer;
        let docs: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t).unwrap()).collect();
        let bos = perplex::core::ResolvedBos::resolve(
            options.bos(),
            &options.protocol(),
            tokenizer.bos_id(),
            tokenizer.adds_bos(),
        )
        .unwrap();
        let settings = EvalSettings::new(&options, bos);
        let windows = plan_corpus(&docs, &settings);
        let calls = case["ids"].as_array().unwrap();
        let ranges = case["score_ranges"].as_array().unwrap();
        assert_eq!(windows.len(), calls.len(), "{name}: window count");
        for ((w, ids), range) in windows.iter().zip(calls).zip(ranges) {
            assert_eq!(w.tokens, u32s(ids), "{name}: window tokens");
            let range = u32s(range);
            assert_eq!(
                (w.score_from, w.tokens.len()),
                (range[0] as usize, range[1] as usize),
                "{name}"
            );
        }

        let mut sink = CollectSink::default();
        let report = evaluator
            .evaluate_into(&Corpus::from_texts(texts), &options, &mut sink)
            .unwrap();
        let expected = f64s(&case["nll"]);
        assert_eq!(sink.events.len(), expected.len(), "{name}: scored tokens");
        for (i, (e, x)) in sink.events.iter().zip(&expected).enumerate() {
            assert!(
                (e.score.nll - x).abs() <= TOL,
                "{name}: token {i}: {} vs {x}",
                e.score.nll
            );
        }
        assert_eq!(
            report.summary.scored_tokens,
            case["scored_tokens"].as_u64().unwrap()
        );
        let ppl = report.summary.perplexity.unwrap();
        let want = case["perplexity"].as_f64().unwrap();
        assert!(
            (ppl - want).abs() / want < 1e-5,
            "{name}: perplexity {ppl} vs {want}"
        );
        if let Some(mean) = case.get("mean_perplexity") {
            let got = report.summary.mean_document_perplexity.unwrap();
            let want = mean.as_f64().unwrap();
            assert!(
                (got - want).abs() / want < 1e-5,
                "{name}: mean perplexity {got} vs {want}"
            );
        }
    }
}
