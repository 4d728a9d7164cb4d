//! Progress of long work: indicatif spinners with elapsed time on a terminal; plain
//! timestamped lines on stderr when stderr is not a terminal or `CI=true`. stdout is left to
//! the command's result (one JSON document with `--output json`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Text from a stamp or repository, safe for a terminal: control characters (an ESC sequence
/// could rewrite the screen or the title) are shown escaped, `\u{1b}`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `1 container`, `2 containers`.
pub fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// The Docker objects of a sweep or an env, counted in words.
pub fn objects(containers: usize, volumes: usize, networks: usize) -> String {
    format!(
        "{}, {}, {}",
        count(containers, "container"),
        count(volumes, "volume"),
        count(networks, "network")
    )
}

/// Where `-v` shows the underlying calls (Kubernetes API requests, Docker API calls, kind/k3d,
/// git and Gitea): set by the command's [`Progress`] when it is verbose, read by the layers that
/// make the calls, so every command shows them the same way without passing a handle down.
static CALL_LOG: std::sync::RwLock<Option<(bool, MultiProgress)>> = std::sync::RwLock::new(None);

/// A URL's `user:password@` taken out (a `KINDLING_GITEA_URL` may carry one).
fn without_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***@");
                rest = &tail[userinfo_end + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Shows the underlying calls from now on (`-v`), on stderr like progress. An env command's
/// [`Progress`] takes the log over, so calls print above its spinners.
pub fn show_calls() {
    if let Ok(mut log) = CALL_LOG.write() {
        *log = Some((stderr_is_terminal(), MultiProgress::new()));
    }
}

/// Spinners only when stderr is a terminal and this is not CI.
fn stderr_is_terminal() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    std::io::stderr().is_terminal() && !ci
}

/// One underlying call, shown with `-v` (nothing otherwise; `what` is only built then). Never
/// pass a secret: a request line, not its body or headers.
pub fn call(what: impl FnOnce() -> String) {
    let Ok(log) = CALL_LOG.read() else { return };
    let Some((tty, multi)) = log.as_ref() else {
        return;
    };
    // One line per call, whatever the call's text holds.
    let text = format!(
        "  · {}",
        printable(&without_userinfo(&what())).replace('\n', "\\n")
    );
    if *tty {
        let _ = multi.println(text);
    } else {
        eprintln!("{} {text}", clock());
    }
}

pub struct Progress {
    tty: bool,
    verbose: u8,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Progress {
    /// Spinners only when stderr is a terminal and this is not CI.
    pub fn new(verbose: u8) -> Progress {
        Progress::with_mode(stderr_is_terminal(), verbose)
    }

    pub fn with_mode(tty: bool, verbose: u8) -> Progress {
        let multi = MultiProgress::new();
        if verbose > 0
            && let Ok(mut log) = CALL_LOG.write()
        {
            *log = Some((tty, multi.clone()));
        }
        Progress {
            tty,
            verbose,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    fn line(&self, text: &str) {
        if self.tty {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{} {text}", clock());
        }
    }

    pub fn start(&self, step: &str, detail: &str) {
        if self.tty {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<10} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(step.to_string());
            bar.set_message(detail.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut bars) = self.bars.lock() {
                bars.insert(step.to_string(), bar);
            }
        } else {
            self.line(&format!("{step}: {detail}"));
        }
    }

    fn finish(&self, step: &str, mark: &str, text: String) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(step));
        match bar {
            // The finished line goes above the spinners still running; restyling the bar in
            // place drew one frame of the new mark beside the old message.
            Some(bar) => {
                bar.finish_and_clear();
                let _ = self
                    .multi
                    .println(format!("\u{1b}[1m{mark}\u{1b}[0m {step:<10} {text}"));
            }
            None => self.line(&format!("{step}: {text}")),
        }
    }

    pub fn done(&self, step: &str, elapsed: Duration, detail: &str) {
        self.finish(step, "✓", format!("{detail} ({})", seconds(elapsed)));
    }

    pub fn skip(&self, step: &str, why: &str) {
        self.finish(step, "-", format!("{why} (skipped)"));
    }

    pub fn fail(&self, step: &str, error: &str) {
        self.finish(
            step,
            "✗",
            format!("failed: {}", error.lines().next().unwrap_or_default()),
        );
    }

    pub fn info(&self, message: &str) {
        self.line(message);
    }

    pub fn warn(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }

    /// Underlying calls, shown with `-v`.
    pub fn detail(&self, message: &str) {
        if self.verbose > 0 {
            self.line(&format!("  {message}"));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ui_printable_escapes_control_characters() {
        assert_eq!(super::printable("plain text"), "plain text");
        assert_eq!(super::printable("x\u{1b}[2Jy\u{7}"), "x\\u{1b}[2Jy\\u{7}");
    }

    #[test]
    fn ui_call_log_leaves_out_userinfo() {
        assert_eq!(
            super::without_userinfo("gitea: GET https://me:s3cret@git.example/api/v1/user x://a"),
            "gitea: GET https://***@git.example/api/v1/user x://a"
        );
        assert_eq!(
            super::without_userinfo("git push http://127.0.0.1:3000/kindling/source.git"),
            "git push http://127.0.0.1:3000/kindling/source.git"
        );
    }

    #[test]
    fn ui_counts_read_as_english() {
        assert_eq!(super::count(1, "container"), "1 container");
        assert_eq!(super::count(0, "volume"), "0 volumes");
        assert_eq!(super::objects(1, 2, 1), "1 container, 2 volumes, 1 network");
    }
}
