//! The apply progress display: a bar on a terminal, one line per restaurant otherwise, both on
//! stderr. It lives in the binary: the library reports progress through a trait and prints nothing.

use sipform::apply::{Outcome, Progress};

/// A bar on a terminal, one line per restaurant otherwise; both on stderr.
pub struct TerminalProgress {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
}

impl TerminalProgress {
    pub fn new(total_actions: u64) -> Self {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total_actions);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} actions {msg}",
            ) {
                bar.set_style(style);
            }
            TerminalProgress {
                bar: Some(bar),
                lines: false,
            }
        } else {
            TerminalProgress {
                bar: None,
                lines: true,
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress {
    fn action_done(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn restaurant_done(&self, o: &Outcome) {
        // Writes held back because the run is stopping are not failures.
        let held_back = o.error.as_ref().is_some_and(|e| e.is_halt());
        let line = match &o.error {
            None => format!(
                "restaurant {} ({}): done, {} actions",
                o.name, o.restaurant, o.done
            ),
            Some(_) if held_back && o.done == 0 => {
                format!("restaurant {} ({}): not started", o.name, o.restaurant)
            }
            Some(_) if held_back => format!(
                "restaurant {} ({}): stopped after {}/{} actions",
                o.name, o.restaurant, o.done, o.planned
            ),
            Some(e) => format!("restaurant {} ({}): FAILED: {e}", o.name, o.restaurant),
        };
        // One line whatever the name or the error quotes (issue 25 #7).
        let line = sipform::output::escape(&line).into_owned();
        if let Some(b) = &self.bar {
            if o.error.is_some() && !held_back {
                b.println(line);
            }
        } else if self.lines {
            eprintln!("{line}");
        }
    }
}
