//! Progress of long work: a bar per shard on a terminal (bytes or keys, rate, ETA), plain log
//! lines on stderr otherwise (every 5 seconds and at the end).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Keys,
}

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
}

impl Progress {
    /// Bars when stderr is a terminal, log lines otherwise; `quiet` prints nothing.
    pub fn new(quiet: bool) -> Progress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { multi, quiet }
    }

    /// A line of its own (through the bars, so it does not tear them).
    pub fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn bar(&self, name: &str, total: Option<u64>, unit: Unit) -> Bar {
        let pb = self.multi.as_ref().map(|m| {
            let pb = m.add(match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            });
            let tpl = match (unit, total.is_some()) {
                (Unit::Bytes, true) => {
                    "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                }
                (Unit::Bytes, false) => "{prefix:>16} {spinner} {bytes} {bytes_per_sec}",
                (Unit::Keys, true) => {
                    "{prefix:>16} [{bar:30}] {human_pos}/{human_len} keys {per_sec} {msg} eta {eta}"
                }
                (Unit::Keys, false) => "{prefix:>16} {spinner} {human_pos} keys {per_sec} {msg}",
            };
            pb.set_style(
                ProgressStyle::with_template(tpl)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_prefix(name.to_string());
            pb
        });
        Bar {
            pb,
            name: name.to_string(),
            total,
            unit,
            quiet: self.quiet,
            state: Arc::new(Mutex::new((0, Instant::now(), Instant::now(), 0))),
        }
    }
}

#[derive(Clone)]
pub struct Bar {
    pb: Option<ProgressBar>,
    name: String,
    total: Option<u64>,
    unit: Unit,
    quiet: bool,
    /// Done so far, when it started, when it last logged, bytes beside keys.
    state: Arc<Mutex<(u64, Instant, Instant, u64)>>,
}

impl Bar {
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.inc(n);
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        s.0 += n;
        if !self.quiet && s.2.elapsed() >= Duration::from_secs(5) {
            s.2 = Instant::now();
            eprintln!("{}", self.line(s.0, s.1, s.3));
        }
    }

    /// Keys done, with the bytes they held (a bar in keys that also shows bytes/s).
    pub fn inc_keys_bytes(&self, keys: u64, bytes: u64) {
        let Ok(mut s) = self.state.lock() else { return };
        s.3 += bytes;
        if let Some(pb) = &self.pb {
            let secs = s.1.elapsed().as_secs_f64().max(1e-3);
            pb.set_message(format!(
                "{} {}/s",
                HumanBytes(s.3),
                HumanBytes((s.3 as f64 / secs) as u64)
            ));
            pb.inc(keys);
            return;
        }
        s.0 += keys;
        if !self.quiet && s.2.elapsed() >= Duration::from_secs(5) {
            s.2 = Instant::now();
            eprintln!("{}", self.line(s.0, s.1, s.3));
        }
    }

    fn line(&self, done: u64, started: Instant, bytes: u64) -> String {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let (d, r) = match self.unit {
            Unit::Bytes => (
                HumanBytes(done).to_string(),
                format!("{}/s", HumanBytes(rate as u64)),
            ),
            Unit::Keys => (format!("{done} keys"), format!("{rate:.0} keys/s")),
        };
        let of = match (self.total, self.unit) {
            (Some(t), Unit::Bytes) => format!(" of {}", HumanBytes(t)),
            (Some(t), Unit::Keys) => format!(" of {t}"),
            _ => String::new(),
        };
        let eta = match self.total {
            Some(t) if rate > 0.0 && t > done => {
                format!(", eta {:.0} s", (t - done) as f64 / rate)
            }
            _ => String::new(),
        };
        let b = if bytes > 0 {
            format!(
                ", {} ({}/s)",
                HumanBytes(bytes),
                HumanBytes((bytes as f64 / secs) as u64)
            )
        } else {
            String::new()
        };
        format!("{}: {d}{of}, {r}{b}{eta}", self.name)
    }

    pub fn finish(&self, msg: &str) {
        if let Some(pb) = &self.pb {
            pb.finish_with_message(msg.to_string());
            return;
        }
        if let Ok(s) = self.state.lock() {
            if !self.quiet {
                eprintln!("{} ({msg})", self.line(s.0, s.1, s.3));
            }
        }
    }
}
