//! What a stage asks of a cluster node: `[stages.NAME.resources]` (`cpus`, `mem`, `time`,
//! `partition`), with defaults by kind. Resources decide where and how fast a stage runs,
//! never what it computes, so they are not part of its key (see `fingerprint.rs`).

use std::fmt;

/// CPUs, memory and time limit for one stage's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// `--cpus-per-task`.
    pub cpus: u32,
    /// `--mem`, in megabytes.
    pub mem_mb: u64,
    /// `--time`, in seconds (Slurm rounds up to whole minutes).
    pub time_seconds: u64,
    /// `--partition`, overriding `[executor] partition`.
    pub partition: Option<String>,
}

impl Resources {
    /// The defaults for a stage of `kind`: the training and search kernels use two cores and
    /// more memory (their matrices are the largest); the rest one core. Sized for the full
    /// archive (106,574 tracks); a bigger dataset sets its own.
    pub fn default_for(kind: &str) -> Self {
        let (cpus, mem_mb, hours) = match kind {
            "knn"
            | "classifier"
            | "encoded_classifier"
            | "autoencoder"
            | "balanced_classifier"
            | "lda"
            | "popularity" => (2, 3072, 4),
            "ingest" | "standardize" | "pca" | "lsi" | "synthetic" | "fma_files" => (1, 2048, 1),
            _ => (1, 1024, 1),
        };
        Self {
            cpus,
            mem_mb,
            time_seconds: hours * 3600,
            partition: None,
        }
    }

    /// Applies one `resources` key as written in `pipeline.toml`; the error says what was
    /// expected.
    pub fn set(&mut self, key: &str, value: &toml::Value) -> Result<(), String> {
        match key {
            "cpus" => {
                let cpus = value
                    .as_integer()
                    .filter(|c| (1..=4096).contains(c))
                    .ok_or_else(|| {
                        format!("expected a whole number of CPUs from 1 to 4096, got {value}")
                    })?;
                self.cpus = cpus as u32;
            }
            "mem" => self.mem_mb = parse_mem(value)?,
            "time" => self.time_seconds = parse_time(value)?,
            "partition" => {
                let name = value
                    .as_str()
                    .filter(|p| is_slurm_word(p))
                    .ok_or_else(|| format!("expected a partition name, got {value}"))?;
                self.partition = Some(name.to_owned());
            }
            other => {
                return Err(format!(
                    "unknown resource `{other}` (expected cpus, mem, time or partition)"
                ))
            }
        }
        Ok(())
    }

    /// `--time` as Slurm reads it: `D-HH:MM:SS`.
    pub fn slurm_time(&self) -> String {
        let t = self.time_seconds;
        format!(
            "{}-{:02}:{:02}:{:02}",
            t / 86_400,
            t % 86_400 / 3600,
            t % 3600 / 60,
            t % 60
        )
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cpu, {} MB, {}",
            self.cpus,
            self.mem_mb,
            self.slurm_time()
        )
    }
}

/// A name Slurm accepts on its command line without quoting surprises.
pub(crate) fn is_slurm_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `mem`: megabytes as a number, or a string with a unit (`500M`, `4G`, `1T`).
fn parse_mem(value: &toml::Value) -> Result<u64, String> {
    let expected =
        || format!("expected megabytes (2048) or a size with a unit (500M, 4G), got {value}");
    let mb = match value {
        toml::Value::Integer(mb) if *mb > 0 => *mb as u64,
        toml::Value::String(text) => {
            let text = text.trim();
            let (digits, unit) = text.split_at(
                text.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(text.len()),
            );
            let amount: u64 = digits.parse().map_err(|_| expected())?;
            let factor = match unit.to_ascii_uppercase().as_str() {
                "" | "M" | "MB" => 1,
                "G" | "GB" => 1024,
                "T" | "TB" => 1024 * 1024,
                _ => return Err(expected()),
            };
            amount
                .checked_mul(factor)
                .filter(|mb| *mb > 0)
                .ok_or_else(expected)?
        }
        _ => return Err(expected()),
    };
    Ok(mb)
}

/// `time`: minutes as a number, or Slurm's forms `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
/// `D-HH:MM`, `D-HH:MM:SS`.
fn parse_time(value: &toml::Value) -> Result<u64, String> {
    let expected = || {
        format!("expected minutes (30) or a Slurm time (MM:SS, HH:MM:SS, D-HH:MM:SS), got {value}")
    };
    let seconds = match value {
        toml::Value::Integer(minutes) if *minutes > 0 => *minutes as u64 * 60,
        toml::Value::String(text) => {
            let number = |part: &str| part.parse::<u64>().map_err(|_| expected());
            let (days, rest) = match text.split_once('-') {
                Some((d, rest)) => (Some(number(d)?), rest),
                None => (None, text.as_str()),
            };
            let parts: Vec<u64> = rest.split(':').map(number).collect::<Result<_, _>>()?;
            let clock = match (days.is_some(), parts.as_slice()) {
                (false, [m]) => m * 60,
                (false, [m, s]) => m * 60 + s,
                (_, [h, m, s]) => h * 3600 + m * 60 + s,
                (true, [h]) => h * 3600,
                (true, [h, m]) => h * 3600 + m * 60,
                _ => return Err(expected()),
            };
            days.unwrap_or(0) * 86_400 + clock
        }
        _ => return Err(expected()),
    };
    if seconds == 0 {
        return Err(expected());
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> Result<u64, String> {
        parse_time(&toml::Value::String(text.into()))
    }

    #[test]
    fn slurm_time_forms_parse_and_render() {
        assert_eq!(time("30"), Ok(1800));
        assert_eq!(time("1:30"), Ok(90));
        assert_eq!(time("2:00:00"), Ok(7200));
        assert_eq!(time("1-2"), Ok(93_600));
        assert_eq!(time("1-02:03:04"), Ok(93_784));
        assert_eq!(parse_time(&toml::Value::Integer(5)), Ok(300));
        assert_eq!(
            time("soon"),
            Err(
                "expected minutes (30) or a Slurm time (MM:SS, HH:MM:SS, D-HH:MM:SS), got \"soon\""
                    .into()
            )
        );
        let r = Resources {
            time_seconds: 93_784,
            ..Resources::default_for("pca")
        };
        assert_eq!(r.slurm_time(), "1-02:03:04");
    }

    #[test]
    fn memory_takes_units() {
        let mem = |v: toml::Value| parse_mem(&v);
        assert_eq!(mem(toml::Value::Integer(512)), Ok(512));
        assert_eq!(mem(toml::Value::String("4G".into())), Ok(4096));
        assert_eq!(mem(toml::Value::String("500m".into())), Ok(500));
        assert_eq!(
            mem(toml::Value::String("lots".into())),
            Err("expected megabytes (2048) or a size with a unit (500M, 4G), got \"lots\"".into())
        );
    }

    #[test]
    fn unknown_keys_and_bad_cpus_are_named() {
        let mut r = Resources::default_for("knn");
        assert_eq!(
            r.set("gpus", &toml::Value::Integer(1)),
            Err("unknown resource `gpus` (expected cpus, mem, time or partition)".into())
        );
        assert_eq!(
            r.set("cpus", &toml::Value::Integer(0)),
            Err("expected a whole number of CPUs from 1 to 4096, got 0".into())
        );
    }
}
