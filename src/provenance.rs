//! The `pipeline.*` provenance of one stage result, as the key-value pairs its Parquet
//! artifacts carry (names in `stages::provenance`).

use stages::provenance as key;

use crate::stage_key::{write_canonical, KeyHash, StageKey};

/// The pairs every Parquet artifact of the result `key` carries.
pub(crate) fn pairs(
    hash: &KeyHash,
    components: &StageKey,
) -> serde_json::Result<Vec<(String, String)>> {
    let mut params = String::new();
    write_canonical(&components.params, &mut params);
    let inputs = serde_json::to_string(&components.inputs)?;
    Ok(vec![
        (key::STAGE.into(), components.stage.clone()),
        (key::KIND.into(), components.kind.clone()),
        (key::KEY.into(), hash.0.clone()),
        (key::PARAMS.into(), params),
        (key::INPUTS.into(), inputs),
        (key::CODE_VERSION.into(), components.code_version.clone()),
        (key::VERSION.into(), env!("CARGO_PKG_VERSION").into()),
    ])
}
