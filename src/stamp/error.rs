use std::fmt;
use std::path::PathBuf;

/// Everything that can be wrong with a stamp. Each variant names the file it is about, so the
/// CLI can print an error a user can act on without reading kindling's source.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    #[error(
        "stamp '{name}' not found (looked in {searched})\nhelp: known stamps: {known}; or pass a path to a stamp directory"
    )]
    NotFound {
        name: String,
        searched: String,
        known: String,
    },
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: {message}", file.display(), position(*line, *column))]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{}: not a stamp: no stamp.yaml (kindling stamp), no stack.yaml or kustomization.yaml with Flux Kustomizations (HostK8s stack), no flux-system/gotk-sync.yaml (Flux cluster directory) and no Argo CD Application",
        dir.display()
    )]
    UnknownFormat { dir: PathBuf },
    #[error("stamp '{stamp}' is invalid ({} problem{}):\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        stamp: String,
        problems: Vec<Problem>,
    },
    #[error("package {} is invalid ({} problem{}):\n{}", dir.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    InvalidPackage {
        dir: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StampError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StampError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a parse error from the YAML library's error, keeping its line and column (0
    /// when the library has none: then no position is printed, rather than `:0:0`).
    pub(crate) fn yaml(file: impl Into<PathBuf>, err: &serde_yaml_ng::Error) -> Self {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        // The library appends "at line X column Y" to some messages; the prefix already says it.
        let message = err.to_string();
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };

        StampError::Parse {
            file: file.into(),
            line,
            column,
            message,
        }
    }

    /// `yaml` for an error in `text`, with a help line when the line it points at is indented
    /// with a tab (the library says only "found character that cannot start any token").
    pub(crate) fn yaml_in(
        file: impl Into<PathBuf>,
        err: &serde_yaml_ng::Error,
        text: &str,
    ) -> Self {
        let mut e = Self::yaml(file, err);
        if let StampError::Parse { line, message, .. } = &mut e
            && *line > 0
            && text.lines().nth(*line - 1).is_some_and(|l| {
                l.chars()
                    .take_while(|c| c.is_whitespace())
                    .any(|c| c == '\t')
            })
        {
            message
                .push_str("\nhelp: YAML does not allow tabs for indentation; indent with spaces");
        }
        e
    }

    /// The problems of an invalid stamp, empty for other errors (for JSON output).
    pub fn problems(&self) -> &[Problem] {
        match self {
            StampError::Invalid { problems, .. } | StampError::InvalidPackage { problems, .. } => {
                problems
            }
            _ => &[],
        }
    }
}

/// One thing wrong with a stamp: where it is (file, entry, field), what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    pub field: String,
    pub message: String,
    pub help: String,
}

impl Problem {
    pub(crate) fn new(
        file: impl Into<PathBuf>,
        entry: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Problem {
            file: file.into(),
            entry: entry.map(str::to_string),
            field: field.into(),
            message: message.into(),
            help: help.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(entry) = &self.entry {
            write!(f, "entry '{entry}': ")?;
        }
        write!(f, "{}: {}", self.field, self.message)?;
        if !self.help.is_empty() {
            write!(f, "\n    help: {}", self.help)?;
        }
        Ok(())
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// `:LINE:COLUMN`, or nothing when the position is not known.
fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamp_errors_never_say_position_0_0() {
        assert_eq!(super::position(0, 0), "");
        assert_eq!(super::position(8, 4), ":8:4");
        let e = super::StampError::Parse {
            file: "stamp.yaml".into(),
            line: 0,
            column: 0,
            message: "unexpected end of input".into(),
        };
        assert_eq!(e.to_string(), "stamp.yaml: unexpected end of input");
    }
}
