//! `perplex watch`.

use std::time::Duration;

use perplex::watch::WatchOptions;

use super::args::WatchArgs;
use super::error::CliError;
use super::eval::note;
use super::progress::ProgressSink;
use super::sweep::Curve;

fn seconds(name: &str, s: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        CliError::usage(
            format!("{name} {s} is not a number of seconds"),
            format!("give {name} a finite number of seconds, 0 or more (e.g. {name} 10)"),
        )
    })
}

/// Runs `perplex watch`: the report (and plots) are rewritten after every
/// checkpoint; the final report also goes to stdout without --output.
pub fn run(args: WatchArgs) -> Result<(), CliError> {
    let WatchArgs {
        mut curve,
        state,
        interval,
        settle,
        exit_when_idle,
        until_step,
    } = args;
    let watch = WatchOptions {
        interval: seconds("--interval", interval)?,
        settle: seconds("--settle", settle)?,
        exit_when_idle: exit_when_idle
            .map(|s| seconds("--exit-when-idle", s))
            .transpose()?,
        until_step,
        state: state.unwrap_or_else(|| curve.run_dir.join("perplex-watch.json")),
    };
    let prepared = Curve::prepare(&mut curve)?;
    let load = curve.run.load_options();
    let report = perplex::watch::watch(
        &curve.run_dir,
        curve.base.as_deref(),
        &prepared.corpus,
        &prepared.options,
        &mut |spec: &str| perplex::load(spec, &load).map_err(CliError::from),
        &watch,
        &mut |report| prepared.write_files(&curve, report),
        &mut |line| note(curve.output.quiet, line),
        // no bar (a watch is long-lived), but it still sees Ctrl-C
        &mut ProgressSink::new(&mut perplex_eval::NullSink, true),
    )?;
    prepared.finish(&curve, &report)
}
