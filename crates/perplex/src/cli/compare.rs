//! `perplex compare`.

use perplex::{CompareOptions, Corpus};
use perplex_report::{verdict_line, write_compare};

use super::args::{CompareArgs, FormatArg};
use super::error::CliError;
use super::eval::{check_writable, eval_options, note, read_corpus, set_threads, write_output};
use super::progress::ProgressSink;

/// Runs `perplex compare`: inputs first, then every model, then one pass.
pub fn run(args: CompareArgs) -> Result<(), CliError> {
    let CompareArgs {
        models: specs,
        texts,
        input,
        run,
        output,
        confidence,
        bits_per_byte,
    } = args;
    let options = CompareOptions::new(eval_options(&run, &input)?)
        .with_confidence(confidence)
        .map_err(perplex::Error::from)?
        .with_bits_per_byte(bits_per_byte);
    let corpus: Corpus = read_corpus(texts, &input)?;
    if let Some(path) = &output.output {
        check_writable(path)?;
    }
    set_threads(run.threads);
    let mut models = Vec::with_capacity(specs.len());
    for spec in &specs {
        models.push(perplex::load(spec, &run.load_options())?);
        note(output.quiet, &format!("loaded {spec}"));
    }
    let report = {
        let mut null = perplex_eval::NullSink;
        let mut progress = ProgressSink::new(&mut null, output.quiet);
        let report = perplex::compare(&mut models, &corpus, &options, &mut progress);
        let report = report.map_err(perplex::Error::from);
        progress.finish();
        report?
    };
    for warning in &report.warnings {
        super::error::render_warning(warning);
    }
    if output.format != FormatArg::Table || output.output.is_some() {
        // the verdicts, for whoever watches the terminal
        for pair in &report.pairs {
            note(output.quiet, &verdict_line(&report, pair));
        }
    }
    let format = output.format.into();
    write_output(&output, |out| write_compare(&report, format, out))
}
