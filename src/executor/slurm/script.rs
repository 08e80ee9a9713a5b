//! The batch script of one job: it runs `pipeline worker` with the job spec on stdin, so the
//! spec travels with the job (Slurm stores the script) and the node needs no spec file.

use std::path::Path;

use crate::executor::job_spec::JobSpec;

/// Ends the spec's here-document; a JSON line always starts with `{`, so it cannot be this.
const END_OF_SPEC: &str = "PIPELINE_JOB_SPEC_END";

/// The script for `spec`, run by `worker` (the `pipeline` binary on the node).
pub fn render_script(worker: &Path, spec: &JobSpec) -> Result<String, String> {
    let json =
        serde_json::to_string(spec).map_err(|e| format!("cannot encode the job spec: {e}"))?;
    let worker = worker
        .to_str()
        .ok_or_else(|| format!("the worker path {} is not UTF-8", worker.display()))?;
    Ok(format!(
        "#!/bin/sh\n# pipeline: stage {stage}, key {key}\nexec {worker} worker <<'{END_OF_SPEC}'\n{json}\n{END_OF_SPEC}\n",
        stage = spec.stage,
        key = spec.key,
        worker = shell_quote(worker),
    ))
}

/// `text` as one word for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_quotes_stays_one_word() {
        assert_eq!(
            shell_quote("/opt/it's/pipeline"),
            r"'/opt/it'\''s/pipeline'"
        );
    }
}
