//! From a model spec to a loaded model: local paths are perplex-model's
//! business, `org/name[@revision]` hub ids perplex-hub's (the local hub
//! cache, else a download into it). This is the one place the two meet.

use perplex_core::inspect::Inspection;
use perplex_hub::HubOptions;
use perplex_model::{ModelSource, ModelSpec};

use crate::Error;

/// Opens `spec`'s adapters, then finds its base: an existing path; else, for
/// an `org/name[@revision]` id, the model in the hub cache, downloaded into
/// it when missing (`hub` says how; unset fields come from the
/// environment); else [`perplex_model::ModelError::NotFound`].
pub fn resolve_model(spec: &str, hub: &HubOptions) -> Result<(ModelSpec, ModelSource), Error> {
    let spec = ModelSpec::parse(spec)?;
    let source = match perplex_hub::resolve(&spec.base, hub)? {
        Some(path) => ModelSource::from_path(&path)?,
        None => ModelSource::local(&spec.base)?,
    };
    Ok((spec, source))
}

/// Resolves `spec` ([`resolve_model`]) and inspects it
/// ([`perplex_model::inspect_spec`]).
pub fn inspect_model(spec: &str, hub: &HubOptions) -> Result<Inspection, Error> {
    let (spec, source) = resolve_model(spec, hub)?;
    Ok(perplex_model::inspect_spec(&spec, &source)?)
}
