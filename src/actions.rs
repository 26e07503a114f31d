//! The GitHub Actions runtime: step outputs (`$GITHUB_OUTPUT`), the job summary
//! (`$GITHUB_STEP_SUMMARY`), workflow commands (`::error::`, `::warning::`, `::add-mask::`).
//!
//! Everything writes to an `impl Write`, so it is tested without a runner; [`Runtime`] binds
//! the writers to the files the runner names, or to the terminal when run locally.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;

/// Appends `name=value` to an output file, in the heredoc form with a random delimiter when
/// the value spans lines (the runner's own toolkit does the same).
pub fn write_output(w: &mut impl Write, name: &str, value: &str) -> io::Result<()> {
    if name.is_empty() || name.contains(['=', '\n', '\r']) || name.contains("<<") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("output name {name:?} is not valid"),
        ));
    }
    if !value.contains(['\n', '\r']) {
        return writeln!(w, "{name}={value}");
    }
    let delimiter = loop {
        let candidate = format!("ghadelimiter_{:032x}", fastrand::u128(..));
        if !value.contains(&candidate) {
            break candidate;
        }
    };
    writeln!(w, "{name}<<{delimiter}\n{value}\n{delimiter}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

/// Optional position of an annotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub title: Option<String>,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub col: Option<usize>,
}

/// Writes `::error title=…,file=…,line=…,col=…::message`.
pub fn annotate(w: &mut impl Write, level: Level, message: &str, at: &Position) -> io::Result<()> {
    let cmd = match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Notice => "notice",
    };
    let mut props = Vec::new();
    if let Some(t) = &at.title {
        props.push(format!("title={}", escape_property(t)));
    }
    if let Some(f) = &at.file {
        props.push(format!("file={}", escape_property(f)));
    }
    if let Some(l) = at.line {
        props.push(format!("line={l}"));
    }
    if let Some(c) = at.col {
        props.push(format!("col={c}"));
    }
    let props = if props.is_empty() {
        String::new()
    } else {
        format!(" {}", props.join(","))
    };
    writeln!(w, "::{cmd}{props}::{}", escape_data(message))
}

/// Tells the runner to hide `secret` in every later log line.
pub fn mask(w: &mut impl Write, secret: &str) -> io::Result<()> {
    if secret.is_empty() {
        return Ok(());
    }
    // A multi-line secret is masked line by line, as the runner matches single lines.
    for line in secret.lines().filter(|l| !l.is_empty()) {
        writeln!(w, "::add-mask::{}", escape_data(line))?;
    }
    Ok(())
}

/// Collapsible log groups.
pub fn group(w: &mut impl Write, title: &str) -> io::Result<()> {
    writeln!(w, "::group::{}", escape_data(title))
}

pub fn end_group(w: &mut impl Write) -> io::Result<()> {
    writeln!(w, "::endgroup::")
}

/// Reads an output file the way the runner does (`name=value` lines and heredocs).
pub fn parse_outputs(text: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    let mut result = Vec::new();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            result.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            result.push((name.to_string(), value.to_string()));
        }
    }
    result
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Where the runner wants outputs and the summary: the files named by `GITHUB_OUTPUT` and
/// `GITHUB_STEP_SUMMARY`. Outside Actions both are unset and outputs are printed instead.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
    /// `GITHUB_ACTIONS=true`: workflow commands are understood.
    pub in_actions: bool,
}

impl Runtime {
    pub fn from_env() -> Runtime {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Runtime {
            output_file: path("GITHUB_OUTPUT"),
            summary_file: path("GITHUB_STEP_SUMMARY"),
            in_actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
        }
    }

    /// Sets step outputs, all in one append so a failure cannot leave half of them.
    pub fn set_outputs(&self, outputs: &[(&str, String)]) -> io::Result<()> {
        let mut buf = Vec::new();
        for (name, value) in outputs {
            write_output(&mut buf, name, value)?;
        }
        match &self.output_file {
            Some(path) => append(path, &buf),
            None => {
                // Local run: show them, so `split --dry-run` on a laptop tells what it would emit.
                let mut err = io::stderr().lock();
                for (name, value) in outputs {
                    writeln!(err, "output {name}={value}")?;
                }
                Ok(())
            }
        }
    }

    /// Appends Markdown to the job summary (no-op outside Actions).
    pub fn append_summary(&self, markdown: &str) -> io::Result<()> {
        match &self.summary_file {
            Some(path) => append(path, markdown.as_bytes()),
            None => Ok(()),
        }
    }

    /// An annotation in Actions (on stdout, where the runner reads workflow commands); a plain
    /// line on stderr elsewhere.
    pub fn annotate(&self, level: Level, message: &str, at: &Position) {
        // Failing to write a log line is not worth failing the run over.
        let _ = if self.in_actions {
            annotate(&mut io::stdout().lock(), level, message, at)
        } else {
            let mut err = io::stderr().lock();
            let word = match level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Notice => "notice",
            };
            writeln!(err, "{word}: {message}")
        };
    }

    pub fn mask(&self, secret: &str) {
        if self.in_actions {
            let _ = mask(&mut io::stdout().lock(), secret);
        }
    }
}

fn append(path: &PathBuf, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(name: &str, value: &str) -> String {
        let mut buf = Vec::new();
        write_output(&mut buf, name, value).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn single_line_outputs_are_name_equals_value() {
        assert_eq!(out("has_work", "true"), "has_work=true\n");
        assert_eq!(
            out("matrix", r#"{"include":[]}"#),
            "matrix={\"include\":[]}\n"
        );
    }

    #[test]
    fn multi_line_outputs_use_a_fresh_random_delimiter() {
        let a = out("summary", "line one\nline two");
        let b = out("summary", "line one\nline two");
        assert!(a.starts_with("summary<<ghadelimiter_"), "{a}");
        assert_ne!(a, b, "delimiters must be random");
        assert_eq!(
            parse_outputs(&a),
            [("summary".to_string(), "line one\nline two".to_string())]
        );
    }

    #[test]
    fn a_value_cannot_forge_another_output() {
        let evil = "x\nstatus=completed\nghadelimiter_0\npr_url=http://evil";
        let text = out("summary", evil);
        let parsed = parse_outputs(&text);
        assert_eq!(parsed, [("summary".to_string(), evil.to_string())]);
    }

    #[test]
    fn bad_output_names_are_refused() {
        let mut buf = Vec::new();
        for name in ["", "a=b", "a\nb", "a<<b"] {
            assert!(write_output(&mut buf, name, "v").is_err(), "{name:?}");
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn annotations_escape_data_and_properties() {
        let mut buf = Vec::new();
        let at = Position {
            title: Some("spec: bad, really".into()),
            file: Some("issue#12".into()),
            line: Some(7),
            col: Some(3),
        };
        annotate(&mut buf, Level::Error, "100% wrong\nsecond line", &at).unwrap();
        annotate(&mut buf, Level::Warning, "plain", &Position::default()).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "::error title=spec%3A bad%2C really,file=issue#12,line=7,col=3::100%25 wrong%0Asecond line\n::warning::plain\n"
        );
    }

    #[test]
    fn masks_every_line_of_a_secret() {
        let mut buf = Vec::new();
        mask(&mut buf, "abc\ndef").unwrap();
        mask(&mut buf, "").unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "::add-mask::abc\n::add-mask::def\n"
        );
    }

    #[test]
    fn groups() {
        let mut buf = Vec::new();
        group(&mut buf, "Creating 3 issues").unwrap();
        end_group(&mut buf).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "::group::Creating 3 issues\n::endgroup::\n"
        );
    }

    #[test]
    fn runtime_appends_to_the_runner_files() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime {
            output_file: Some(dir.path().join("out")),
            summary_file: Some(dir.path().join("sum")),
            in_actions: true,
        };
        std::fs::write(dir.path().join("out"), "earlier=1\n").unwrap();
        rt.set_outputs(&[("a", "1".into()), ("b", "x\ny".into())])
            .unwrap();
        rt.append_summary("# Plan\n").unwrap();
        rt.append_summary("| a |\n").unwrap();
        let parsed = parse_outputs(&std::fs::read_to_string(dir.path().join("out")).unwrap());
        assert_eq!(
            parsed,
            [
                ("earlier".to_string(), "1".to_string()),
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x\ny".to_string())
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sum")).unwrap(),
            "# Plan\n| a |\n"
        );
    }
}
