//! Comparing a base model with others (fine-tuned, adapted, quantized) on
//! the same scored tokens, or by bits per byte when their tokenizers
//! differ: the [`CompareReport`] behind `perplex compare`.

use std::time::Instant;

use perplex_core::compare::{BitsPerByteSummary, PairStats, UnitSums};
use perplex_core::lm::CausalLm;
use perplex_core::plan::ResolvedBos;
use perplex_core::report::{
    CompareReport, ComparedModel, DocumentDelta, PairReport, Report, COMPARE_SCHEMA_VERSION,
};
use perplex_core::sink::Sink;
use perplex_data::Corpus;

use crate::engine;
use crate::error::EvalError;
use crate::evaluate::{evaluate, timing, tool_info, Evaluation};
use crate::model::{add_new, Model};
use crate::options::CompareOptions;

/// Scores `corpus` with every model of `models` (the first is the base) on
/// the same windows in one pass, and compares each other model with the
/// base. Fails before any forward pass when a model's tokenizer gives
/// different ids from the base's on this corpus.
pub fn compare(
    models: &mut [Model],
    corpus: &Corpus,
    options: &CompareOptions,
    sink: &mut dyn Sink,
) -> Result<CompareReport, EvalError> {
    let Some(base) = models.first() else {
        return Err(EvalError::Compare("no models to compare".into()));
    };
    if options.bits_per_byte() {
        return compare_bits_per_byte(models, corpus, options, sink);
    }
    let evaluation = Evaluation::new(&base.tokenizer, corpus, options.eval())?;
    for other in &models[1..] {
        let theirs = Evaluation::new(&other.tokenizer, corpus, options.eval())?;
        if let Some(detail) = first_difference(&evaluation, &theirs) {
            return Err(EvalError::TokenizersDiffer {
                base: base.identity.spec.clone(),
                other: other.identity.spec.clone(),
                detail,
            });
        }
    }
    let mut warnings = Vec::new();
    for m in models.iter() {
        add_new(&mut warnings, m.warnings(options.eval()));
    }
    let start = Instant::now();
    let outcome = {
        let mut lms: Vec<&mut dyn CausalLm> = models
            .iter_mut()
            .map(|m| &mut *m.lm as &mut dyn CausalLm)
            .collect();
        let tokens = evaluation.corpus().tokens();
        engine::compare(&mut lms, tokens, &evaluation.settings(), sink)
    };
    let specs: Vec<&str> = models.iter().map(|m| m.identity.spec.as_str()).collect();
    let outcome = outcome.map_err(|e| e.naming(&models[0].tokenizer, &specs))?;
    evaluation.check_scored(&outcome.models[0])?;
    let seconds = start.elapsed().as_secs_f64();
    let threads = models[0].threads;
    let compared = models
        .iter()
        .zip(&outcome.models)
        .map(|(m, o)| {
            compared_model(evaluation.report(&m.identity, &m.tokenizer, o, threads, seconds))
        })
        .collect();
    let pairs = outcome
        .pairs
        .iter()
        .enumerate()
        .map(|(k, stats)| PairReport {
            base: 0,
            other: k + 1,
            stats: stats.summary(options.confidence()),
            bits_per_byte: None,
            documents: document_deltas(stats, &evaluation),
        })
        .collect();
    let processed: u64 = outcome.models.iter().map(|m| m.processed_tokens).sum();
    Ok(CompareReport {
        schema_version: COMPARE_SCHEMA_VERSION,
        tool: tool_info(),
        corpus: evaluation.corpus_identity(),
        protocol: evaluation.protocol_info(threads),
        models: compared,
        pairs,
        warnings,
        timing: timing(processed, seconds),
    })
}

fn compared_model(report: Report) -> ComparedModel {
    ComparedModel {
        model: report.model,
        tokenizer: report.tokenizer,
        summary: report.summary,
        documents: report.documents,
    }
}

/// Every model evaluated with its own tokenizer; pairs compared by bits per
/// byte over the documents both scored whole.
fn compare_bits_per_byte(
    models: &mut [Model],
    corpus: &Corpus,
    options: &CompareOptions,
    sink: &mut dyn Sink,
) -> Result<CompareReport, EvalError> {
    let eval = options.eval();
    if !eval.protocol().covers_whole_documents() || eval.max_tokens().is_some() {
        return Err(EvalError::Compare(
            "bits per byte needs every document scored whole: use --protocol chunks or \
             sliding, without --max-tokens"
                .into(),
        ));
    }
    let start = Instant::now();
    let mut reports = Vec::with_capacity(models.len());
    let mut warnings = Vec::new();
    for m in models.iter_mut() {
        let mut report = evaluate(m, corpus, eval, sink)?;
        add_new(&mut warnings, std::mem::take(&mut report.warnings));
        reports.push(report);
    }
    let seconds = start.elapsed().as_secs_f64();
    let base = &reports[0];
    let pairs = (1..reports.len())
        .map(|k| {
            let units: Vec<UnitSums> = base
                .documents
                .iter()
                .zip(&reports[k].documents)
                .filter(|(b, o)| b.bytes > 0 && b.bytes == o.bytes)
                .map(|(b, o)| UnitSums {
                    count: b.bytes,
                    base: b.nll_sum / std::f64::consts::LN_2,
                    other: o.nll_sum / std::f64::consts::LN_2,
                })
                .collect();
            PairReport {
                base: 0,
                other: k,
                stats: None,
                bits_per_byte: BitsPerByteSummary::new(&units, options.confidence()),
                documents: Vec::new(),
            }
        })
        .collect();
    let processed = reports.iter().map(|r| r.summary.processed_tokens).sum();
    let first = &reports[0];
    Ok(CompareReport {
        schema_version: COMPARE_SCHEMA_VERSION,
        tool: tool_info(),
        corpus: first.corpus.clone(),
        protocol: first.protocol.clone(),
        models: reports.into_iter().map(compared_model).collect(),
        pairs,
        warnings,
        timing: timing(processed, seconds),
    })
}

/// Where two tokenizations of the same corpus first differ, in words.
fn first_difference(a: &Evaluation<'_>, b: &Evaluation<'_>) -> Option<String> {
    if a.bos() != b.bos() {
        return Some(format!(
            "with these options one scores with {}, the other with {}",
            describe_bos(a.bos()),
            describe_bos(b.bos())
        ));
    }
    a.corpus().first_difference(b.corpus())
}

fn describe_bos(bos: ResolvedBos) -> String {
    match bos {
        ResolvedBos::None => "no BOS".into(),
        ResolvedBos::Document { id } => format!("BOS id {id} before each document"),
        ResolvedBos::Window { id } => format!("BOS id {id} at each window"),
        ResolvedBos::ReplaceFirst { id } => format!("BOS id {id} (llama.cpp style)"),
    }
}

/// Per document with scored tokens, the most improved first.
fn document_deltas(stats: &PairStats, evaluation: &Evaluation<'_>) -> Vec<DocumentDelta> {
    let documents = evaluation.corpus().documents();
    let mut out: Vec<DocumentDelta> = stats
        .documents()
        .iter()
        .enumerate()
        .filter(|(_, d)| d.count > 0)
        .map(|(index, d)| {
            let n = d.count as f64;
            let (base, other) = ((d.base / n).exp(), (d.other / n).exp());
            DocumentDelta {
                index,
                source: documents[index].source.clone(),
                tokens: d.count,
                base_perplexity: base,
                other_perplexity: other,
                mean_nll_difference: (d.other - d.base) / n,
                improvement_percent: (base - other) / base * 100.0,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.mean_nll_difference
            .total_cmp(&b.mean_nll_difference)
            .then(a.index.cmp(&b.index))
    });
    out
}
