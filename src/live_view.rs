//! The live view of `pipeline run` on a terminal: one line per running stage with its
//! elapsed time, its estimate from the last run (kept in `pipeline.lock`) and its own
//! progress (the neural stages' epochs), and a line with finished, running and waiting
//! counts. Drawn with indicatif; off a terminal (CI) nothing is drawn and the plain log lines
//! stay as they are.
//!
//! Log lines must not tear the bars: while a view is up, [`LogWriter`] prints them through
//! it, above the bars.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runner::{Outcome, RunObserver};

/// The view in use, if any, for [`LogWriter`].
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Ticks per bar: progress is a share from 0 to 1.
const TICKS: u64 = 1000;

/// The live view of one run.
pub struct LiveView {
    multi: MultiProgress,
    summary: ProgressBar,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    planned: usize,
    finished: usize,
    running: usize,
}

impl LiveView {
    /// A view on stderr, or `None` when stderr is not a terminal.
    pub fn on_terminal() -> Option<Arc<Self>> {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let summary = multi.add(ProgressBar::new_spinner());
        summary.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        summary.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(multi.clone());
        }
        Some(Arc::new(Self {
            multi,
            summary,
            bars: Mutex::new(BTreeMap::new()),
            counts: Mutex::new(Counts::default()),
        }))
    }

    fn refresh_summary(&self) {
        if let Ok(c) = self.counts.lock() {
            let waiting = c.planned.saturating_sub(c.finished + c.running);
            self.summary.set_message(format!(
                "finished {} of {}, running {}, waiting {}",
                c.finished, c.planned, c.running, waiting
            ));
        }
    }

    /// Removes the view before the summary table is printed.
    pub fn close(&self) {
        if let Ok(mut active) = ACTIVE.lock() {
            *active = None;
        }
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in std::mem::take(&mut *bars) {
                bar.finish_and_clear();
            }
        }
        self.summary.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl RunObserver for LiveView {
    fn planned(&self, stages: usize) {
        if let Ok(mut c) = self.counts.lock() {
            c.planned = stages;
        }
        self.refresh_summary();
    }

    fn started(&self, stage: &str, estimate: Option<f64>) {
        let bar = self.multi.add(ProgressBar::new(TICKS));
        let estimate = estimate.map_or_else(
            || "no estimate yet".to_owned(),
            |s| format!("last run {s:.1}s"),
        );
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "  {{prefix:20}} {{elapsed:>4}} ({estimate}) [{{bar:20}}] {{wide_msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>."),
        );
        bar.set_prefix(stage.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(stage.to_owned(), bar);
        }
        if let Ok(mut c) = self.counts.lock() {
            c.running += 1;
        }
        self.refresh_summary();
    }

    fn progress(&self, stage: &str, message: &str, done: f64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(stage).cloned()) {
            bar.set_position((done * TICKS as f64) as u64);
            bar.set_message(message.to_owned());
        }
    }

    fn settled(&self, stage: &str, _outcome: Outcome) {
        let removed = self.bars.lock().ok().and_then(|mut b| b.remove(stage));
        if let Ok(mut c) = self.counts.lock() {
            c.finished += 1;
            if removed.is_some() {
                c.running = c.running.saturating_sub(1);
            }
        }
        if let Some(bar) = removed {
            bar.finish_and_clear();
        }
        self.refresh_summary();
    }
}

/// Where log lines go: stderr, above the live view's bars while one is up.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().ok().and_then(|a| a.clone());
        match active {
            Some(multi) => {
                multi.suspend(|| std::io::stderr().write_all(buf))?;
                Ok(buf.len())
            }
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
