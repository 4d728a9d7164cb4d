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
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{}: not a stamp: no stamp.yaml (kindling stamp) and no stack.yaml or kustomization.yaml with Flux Kustomizations (HostK8s stack)",
        dir.display()
    )]
    UnknownFormat { dir: PathBuf },
    #[error("stamp '{stamp}' is invalid ({} problem{}):\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        stamp: String,
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

    /// Builds a parse error from the YAML library's error, keeping its line and column.
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

    /// The problems of an invalid stamp, empty for other errors (for JSON output).
    pub fn problems(&self) -> &[Problem] {
        match self {
            StampError::Invalid { problems, .. } => problems,
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
