//! `perplex inspect`.

use std::io::Write;

use perplex::hub::HubOptions;
use perplex_core::inspect::Level;
use perplex_report::{write_inspection_json, write_inspection_table};

use super::args::{InspectArgs, InspectFormatArg};
use super::error::CliError;
use super::eval::stdout_error;

/// Prints the inspection; fails (exit 4) after printing it when a check
/// found an error, since `eval` would refuse the model.
pub fn run(args: InspectArgs) -> Result<(), CliError> {
    let InspectArgs { model, format } = args;
    let inspection = perplex::inspect_model(&model, &HubOptions::default())?;
    let mut stdout = std::io::stdout().lock();
    match format {
        InspectFormatArg::Table => write_inspection_table(&inspection, &mut stdout),
        InspectFormatArg::Json => write_inspection_json(&inspection, &mut stdout),
    }
    .and_then(|()| stdout.flush())
    .map_err(stdout_error)?;
    let errors = inspection
        .checks
        .iter()
        .filter(|c| c.level == Level::Error)
        .count();
    if errors > 0 {
        return Err(CliError::FailedChecks { model, errors });
    }
    Ok(())
}
