//! The output policy: which files a model's answer may write. Pure, no I/O.
//!
//! Nothing from an answer reaches GitHub unless [`OutputPolicy::check`] accepts *all* of it. A
//! refusal lists every problem at once (not just the first), each naming the path, so that the
//! reason posted on the worker issue is complete.
//!
//! Rules, in short: a path is relative to the repository root, uses `/`, names a file, and stays
//! out of `.git` (any component, any case, including the spellings Windows and macOS treat as
//! `.git`) and out of `.github/` at the root (workflows; a model must not touch CI, and
//! `GITHUB_TOKEN` cannot push workflows anyway). `./a/b` is normalised to `a/b`. Two files may not
//! land on the same path, compared case-insensitively because checkouts on macOS and Windows would
//! collide; nor may a file also be a directory of another. Content must be UTF-8 and within the
//! size limits. When the task lists allowed paths, every file must match one of them.
//!
//! Invalid UTF-8: the answer JSON can only carry valid strings, and the LLM client refuses any
//! response body that is not valid UTF-8 as a whole (never decoding it lossily), so invalid bytes
//! end in an `LlmError::BadResponse`. [`OutputPolicy::check`] takes raw bytes too and refuses
//! invalid UTF-8 content, for files that come from anywhere else.

use crate::llm::AnswerFile;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::HashMap;
use std::fmt;

/// Default most files in one answer.
pub const DEFAULT_MAX_FILES: usize = 50;
/// Default largest file: 256 KiB.
pub const DEFAULT_MAX_FILE_BYTES: usize = 256 * 1024;
/// Default largest total of all files: 1 MiB.
pub const DEFAULT_MAX_TOTAL_BYTES: usize = 1024 * 1024;
/// Longest path component (the usual file-system limit, in bytes).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest path (Linux `PATH_MAX`, in bytes).
pub const MAX_PATH_BYTES: usize = 4096;

/// What an answer may write. [`Default`] has no path restriction and the default limits.
#[derive(Debug, Clone)]
pub struct OutputPolicy {
    allowed: Option<AllowedPaths>,
    pub max_files: usize,
    pub max_file_bytes: usize,
    pub max_total_bytes: usize,
}

#[derive(Debug, Clone)]
struct AllowedPaths {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Default for OutputPolicy {
    fn default() -> Self {
        Self {
            allowed: None,
            max_files: DEFAULT_MAX_FILES,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

/// A file that passed the policy: normalised path, UTF-8 content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeFile {
    pub path: String,
    pub content: String,
}

/// An allowed-paths pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allowed path pattern `{pattern}` is not a valid glob ({reason}); fix allowedPaths in the task"
)]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl OutputPolicy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restrict files to these glob patterns (relative to the repository root).
    ///
    /// `*` and `?` do not cross `/`; `**` does. A pattern ending in `/` means everything under
    /// that directory; a pattern without glob characters means that file or everything under
    /// that directory (`docs` allows `docs` and `docs/a/b.md`). Leading `./` or `/` is ignored.
    /// Matching is case-sensitive, as Git is. An empty list means no restriction.
    pub fn with_allowed<I, S>(mut self, patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns: Vec<String> = patterns
            .into_iter()
            .map(|p| p.as_ref().trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if patterns.is_empty() {
            self.allowed = None;
            return Ok(self);
        }
        let mut builder = GlobSetBuilder::new();
        for pattern in &patterns {
            for expanded in expand_pattern(pattern) {
                let glob = GlobBuilder::new(&expanded)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| PatternError {
                        pattern: pattern.clone(),
                        reason: e.kind().to_string(),
                    })?;
                builder.add(glob);
            }
        }
        let set = builder.build().map_err(|e| PatternError {
            pattern: patterns.join(", "),
            reason: e.to_string(),
        })?;
        self.allowed = Some(AllowedPaths { patterns, set });
        Ok(self)
    }

    /// The allowed-path patterns, as given, when the policy restricts paths.
    pub fn allowed_patterns(&self) -> Option<&[String]> {
        self.allowed.as_ref().map(|a| a.patterns.as_slice())
    }

    /// Check an answer's files. [`Ok`] holds every file, normalised, in the given order.
    pub fn check_answer(&self, files: &[AnswerFile]) -> Result<Vec<SafeFile>, PolicyViolation> {
        let pairs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_bytes()))
            .collect();
        self.check(&pairs)
    }

    /// Check `(path, content)` pairs; content may be raw bytes or text. Either every file is
    /// accepted, or the error lists every problem found.
    pub fn check<P, C>(&self, files: &[(P, C)]) -> Result<Vec<SafeFile>, PolicyViolation>
    where
        P: AsRef<str>,
        C: AsRef<[u8]>,
    {
        let mut violations = Vec::new();
        if files.len() > self.max_files {
            violations.push(Violation::TooManyFiles {
                count: files.len(),
                max: self.max_files,
            });
        }
        let mut accepted = Vec::with_capacity(files.len());
        // Lower-cased path -> the path as first given, for duplicates and file/directory clashes.
        let mut seen_files: HashMap<String, String> = HashMap::new();
        let mut seen_dirs: HashMap<String, String> = HashMap::new();
        let mut total: usize = 0;
        let mut normalised_all = Vec::with_capacity(files.len());

        for (index, (path, content)) in files.iter().enumerate() {
            let raw = path.as_ref();
            let content = content.as_ref();
            total = total.saturating_add(content.len());

            let normalised = match check_path(raw, index) {
                Ok(p) => Some(p),
                Err(mut v) => {
                    violations.append(&mut v);
                    None
                }
            };
            if let Some(p) = &normalised {
                if let Some(allowed) = &self.allowed
                    && !allowed.set.is_match(p.as_str())
                {
                    violations.push(Violation::NotAllowed {
                        path: p.clone(),
                        patterns: allowed.patterns.join(", "),
                    });
                }
                let key = p.to_lowercase();
                if let Some(first) = seen_files.get(&key) {
                    violations.push(Violation::Duplicate {
                        path: raw.to_string(),
                        first: first.clone(),
                    });
                } else {
                    seen_files.insert(key.clone(), raw.to_string());
                    let mut dir = key.as_str();
                    while let Some(cut) = dir.rfind('/') {
                        dir = &dir[..cut];
                        seen_dirs
                            .entry(dir.to_string())
                            .or_insert_with(|| raw.to_string());
                    }
                }
            }

            let label = normalised.clone().unwrap_or_else(|| raw.to_string());
            if content.len() > self.max_file_bytes {
                violations.push(Violation::FileTooLarge {
                    path: label.clone(),
                    bytes: content.len(),
                    max: self.max_file_bytes,
                });
            }
            match std::str::from_utf8(content) {
                Ok(text) => {
                    if let Some(p) = &normalised {
                        accepted.push(SafeFile {
                            path: p.clone(),
                            content: text.to_string(),
                        });
                    }
                }
                Err(e) => violations.push(Violation::InvalidUtf8 {
                    path: label,
                    offset: e.valid_up_to(),
                }),
            }
            normalised_all.push(normalised);
        }

        for (raw, normalised) in files.iter().zip(&normalised_all) {
            if let Some(p) = normalised
                && let Some(other) = seen_dirs.get(&p.to_lowercase())
            {
                violations.push(Violation::FileDirectoryClash {
                    path: raw.0.as_ref().to_string(),
                    other: other.clone(),
                });
            }
        }

        if total > self.max_total_bytes {
            violations.push(Violation::TotalTooLarge {
                bytes: total,
                max: self.max_total_bytes,
            });
        }
        if violations.is_empty() {
            Ok(accepted)
        } else {
            Err(PolicyViolation { violations })
        }
    }
}

/// `pattern` as globs: `dir/` → `dir/**`; a plain name → itself and everything under it.
fn expand_pattern(pattern: &str) -> Vec<String> {
    let mut p = pattern;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_start_matches('/');
    if p.is_empty() {
        return vec!["**".to_string()];
    }
    if let Some(dir) = p.strip_suffix('/') {
        return vec![format!("{dir}/**")];
    }
    if p.contains(['*', '?', '[', '{']) {
        vec![p.to_string()]
    } else {
        vec![p.to_string(), format!("{p}/**")]
    }
}

/// Check one path; on success, the normalised form (`./a//b` → `a/b`).
pub fn check_path(raw: &str, index: usize) -> Result<String, Vec<Violation>> {
    let mut v = Vec::new();
    let path = || raw.to_string();
    if raw.is_empty() {
        return Err(vec![Violation::EmptyPath { index }]);
    }
    if raw.chars().any(is_forbidden_char) {
        v.push(Violation::ControlCharacter { path: path() });
    }
    if raw.contains('\\') {
        v.push(Violation::Backslash { path: path() });
    }
    // Components split on both separators, so `..\x` and `.git\config` are caught as well.
    let components: Vec<&str> = raw
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    // A drive letter is checked on the first component after normalising, so `./C:/x` counts.
    let drive = components.first().is_some_and(|c| {
        let b = c.as_bytes();
        b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
    });
    if raw.starts_with('/') || raw.starts_with('\\') || drive {
        v.push(Violation::Absolute { path: path() });
    }
    if raw.len() > MAX_PATH_BYTES {
        v.push(Violation::PathTooLong {
            path: path(),
            bytes: raw.len(),
        });
    }
    if components.is_empty() {
        if v.is_empty() {
            return Err(vec![Violation::EmptyPath { index }]);
        }
    } else if raw.ends_with('/') {
        v.push(Violation::NamesDirectory { path: path() });
    }
    if components.contains(&"..") {
        v.push(Violation::ParentComponent { path: path() });
    }
    if let Some(long) = components.iter().find(|c| c.len() > MAX_COMPONENT_BYTES) {
        v.push(Violation::ComponentTooLong {
            path: path(),
            bytes: long.len(),
        });
    }
    if components.iter().any(|c| is_dot_git(c)) {
        v.push(Violation::GitDirectory { path: path() });
    }
    if components
        .first()
        .is_some_and(|c| c.eq_ignore_ascii_case(".github"))
    {
        v.push(Violation::GithubDirectory { path: path() });
    }
    if v.is_empty() {
        Ok(components.join("/"))
    } else {
        Err(v)
    }
}

/// Control characters (C0, DEL, C1, NUL included) and invisible bidirectional controls, which
/// make a path read differently from what it is.
fn is_forbidden_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether a component is, or is treated by some file system as, `.git`: any case; with
/// trailing dots or spaces (Windows drops them); with an NTFS stream suffix (`.git::$INDEX`);
/// the 8.3 short name `git~1`; or with code points HFS+ ignores (zero-width joiners, …).
/// These are the spellings Git itself refuses (`verify_path`).
fn is_dot_git(component: &str) -> bool {
    let visible: String = component
        .chars()
        .filter(|c| !is_hfs_ignorable(*c))
        .collect();
    let name = visible.split(':').next().unwrap_or("");
    let name = name.trim_end_matches(['.', ' ']);
    name.eq_ignore_ascii_case(".git") || name.eq_ignore_ascii_case("git~1")
}

fn is_hfs_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{200C}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}'
    )
}

/// One reason a file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("files[{index}] has an empty path")]
    EmptyPath { index: usize },
    #[error(
        "{} is absolute; paths must be relative to the repository root",
        Shown(path)
    )]
    Absolute { path: String },
    #[error("{} contains a `..` component", Shown(path))]
    ParentComponent { path: String },
    #[error("{} contains a backslash; use `/` between directories", Shown(path))]
    Backslash { path: String },
    #[error("{} is inside a `.git` directory", Shown(path))]
    GitDirectory { path: String },
    #[error(
        "{} is inside `.github/` (workflows and CI settings are off limits)",
        Shown(path)
    )]
    GithubDirectory { path: String },
    #[error("{} contains control or invisible formatting characters", Shown(path))]
    ControlCharacter { path: String },
    #[error("{} ends with `/`, so it names a directory, not a file", Shown(path))]
    NamesDirectory { path: String },
    #[error(
        "{} has a component of {bytes} bytes (at most {MAX_COMPONENT_BYTES})",
        Shown(path)
    )]
    ComponentTooLong { path: String, bytes: usize },
    #[error("{} is {bytes} bytes long (at most {MAX_PATH_BYTES})", Shown(path))]
    PathTooLong { path: String, bytes: usize },
    #[error("{} is outside the task's allowed paths ({patterns})", Shown(path))]
    NotAllowed { path: String, patterns: String },
    #[error(
        "{} is the same file as {} (paths are compared ignoring case and `./`)",
        Shown(path),
        Shown(first)
    )]
    Duplicate { path: String, first: String },
    #[error(
        "{} is a file, but {} needs it to be a directory",
        Shown(path),
        Shown(other)
    )]
    FileDirectoryClash { path: String, other: String },
    #[error("the answer has {count} files (at most {max})")]
    TooManyFiles { count: usize, max: usize },
    #[error("{} is {bytes} bytes (at most {max} per file)", Shown(path))]
    FileTooLarge {
        path: String,
        bytes: usize,
        max: usize,
    },
    #[error("the files total {bytes} bytes (at most {max} in all)")]
    TotalTooLarge { bytes: usize, max: usize },
    #[error("{} is not valid utf-8 (bad byte at offset {offset})", Shown(path))]
    InvalidUtf8 { path: String, offset: usize },
}

/// A refused answer: every violation found. `Display` lists them one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    pub violations: Vec<Violation>,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.violations.len();
        write!(
            f,
            "the model's answer was refused and nothing was written ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for v in &self.violations {
            write!(f, "\n- {v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyViolation {}

/// A path for messages: quoted, control characters escaped, long ones shortened.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 120;
        f.write_str("`")?;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX {
                f.write_str("…")?;
                break;
            }
            if is_forbidden_char(c) || c == '`' {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(path: &str) -> Result<Vec<SafeFile>, PolicyViolation> {
        OutputPolicy::new().check(&[(path, "x")])
    }

    fn refused(path: &str) -> Vec<Violation> {
        one(path)
            .expect_err(&format!("{path:?} should be refused"))
            .violations
    }

    fn accepted(path: &str) -> String {
        let files = one(path).unwrap_or_else(|e| panic!("{path:?} should pass: {e}"));
        files[0].path.clone()
    }

    #[test]
    fn plain_relative_paths_pass_and_are_normalised() {
        assert_eq!(accepted("src/lib.rs"), "src/lib.rs");
        assert_eq!(accepted("./a/b"), "a/b");
        assert_eq!(accepted("././a//b"), "a/b");
        assert_eq!(accepted("a/./b"), "a/b");
        assert_eq!(accepted("README.md"), "README.md");
        assert_eq!(accepted(".gitignore"), ".gitignore");
        assert_eq!(accepted("docs/.github/x.md"), "docs/.github/x.md");
        assert_eq!(accepted(".githubx/a"), ".githubx/a");
        assert_eq!(accepted("a/git/b"), "a/git/b");
        assert_eq!(accepted("naïve/ünïcode.txt"), "naïve/ünïcode.txt");
    }

    #[test]
    fn empty_paths() {
        assert_eq!(refused(""), vec![Violation::EmptyPath { index: 0 }]);
        assert_eq!(refused("."), vec![Violation::EmptyPath { index: 0 }]);
        assert_eq!(refused("./"), vec![Violation::EmptyPath { index: 0 }]);
    }

    #[test]
    fn absolute_paths() {
        for p in [
            "/etc/passwd",
            "/",
            "C:\\Windows\\x",
            "c:/x",
            "C:",
            "\\\\server\\share\\x",
        ] {
            let v = refused(p);
            assert!(
                v.iter().any(|v| matches!(v, Violation::Absolute { .. })),
                "{p}: {v:?}"
            );
        }
    }

    #[test]
    fn parent_components() {
        for p in ["../x", "a/../../x", "a/..", "..", "a\\..\\b"] {
            let v = refused(p);
            assert!(
                v.iter()
                    .any(|v| matches!(v, Violation::ParentComponent { .. })),
                "{p}: {v:?}"
            );
        }
        assert_eq!(accepted("a/..b/c.."), "a/..b/c..");
    }

    #[test]
    fn backslashes() {
        let v = refused("src\\main.rs");
        assert_eq!(
            v,
            vec![Violation::Backslash {
                path: "src\\main.rs".into()
            }]
        );
    }

    #[test]
    fn dot_git_anywhere_any_spelling() {
        for p in [
            ".git/config",
            ".GIT/config",
            "a/.Git/hooks/pre-commit",
            ".git",
            "sub/.git",
            ".git./config",
            ".git /config",
            ".git::$INDEX_ALLOCATION/x",
            "GIT~1/config",
            ".g\u{200c}it/config",
            "\u{feff}.git/config",
        ] {
            let v = refused(p);
            assert!(
                v.iter()
                    .any(|v| matches!(v, Violation::GitDirectory { .. })),
                "{p:?}: {v:?}"
            );
        }
    }

    #[test]
    fn github_at_root() {
        for p in [
            ".github/workflows/ci.yml",
            ".GitHub/x",
            "./.github/dependabot.yml",
            ".github",
        ] {
            let v = refused(p);
            assert!(
                v.iter()
                    .any(|v| matches!(v, Violation::GithubDirectory { .. })),
                "{p}: {v:?}"
            );
        }
    }

    #[test]
    fn control_characters() {
        for p in [
            "a\0b",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{85}b",
            "evil\u{202e}txt.exe",
        ] {
            let v = refused(p);
            assert!(
                v.iter()
                    .any(|v| matches!(v, Violation::ControlCharacter { .. })),
                "{p:?}: {v:?}"
            );
        }
        let msg = PolicyViolation {
            violations: refused("a\nb"),
        }
        .to_string();
        assert!(msg.contains("a\\u{a}b"), "{msg}");
        assert!(!msg.contains("a\nb"), "{msg}");
    }

    #[test]
    fn trailing_slash_names_a_directory() {
        let v = refused("src/");
        assert_eq!(
            v,
            vec![Violation::NamesDirectory {
                path: "src/".into()
            }]
        );
    }

    #[test]
    fn length_limits() {
        let long_component = "a".repeat(256);
        let v = refused(&format!("dir/{long_component}"));
        assert!(matches!(
            v[0],
            Violation::ComponentTooLong { bytes: 256, .. }
        ));
        assert_eq!(accepted(&"a".repeat(255)), "a".repeat(255));
        let long_path = vec!["abcdefgh"; 500].join("/");
        assert!(long_path.len() > MAX_PATH_BYTES);
        let v = refused(&long_path);
        assert!(matches!(v[0], Violation::PathTooLong { .. }));
        let msg = v[0].to_string();
        assert!(
            msg.len() < 300,
            "long paths are shortened in messages: {msg}"
        );
    }

    #[test]
    fn allowed_globs() {
        let p = OutputPolicy::new()
            .with_allowed(["src/**/*.rs", "docs/", "README.md", "./tests"])
            .unwrap();
        let ok = |path: &str| p.check(&[(path, "x")]).is_ok();
        assert!(ok("src/lib.rs"));
        assert!(ok("src/a/b/c.rs"));
        assert!(ok("./src/lib.rs"));
        assert!(ok("docs/guide/x.md"));
        assert!(ok("README.md"));
        assert!(ok("tests/it.rs"));
        assert!(ok("tests"));
        assert!(!ok("src/lib.txt"));
        assert!(!ok("Cargo.toml"));
        assert!(!ok("docsx/a.md"));
        assert!(!ok("README.md.bak"));
        let v = p.check(&[("Cargo.toml", "x")]).unwrap_err();
        let msg = v.to_string();
        assert!(
            msg.contains("`Cargo.toml` is outside the task's allowed paths"),
            "{msg}"
        );
        assert!(msg.contains("src/**/*.rs, docs/"), "{msg}");
        let star = OutputPolicy::new().with_allowed(["src/*.rs"]).unwrap();
        assert!(star.check(&[("src/a.rs", "")]).is_ok());
        assert!(star.check(&[("src/a/b.rs", "")]).is_err());
        assert_eq!(star.allowed_patterns(), Some(&["src/*.rs".to_string()][..]));
    }

    #[test]
    fn empty_allow_list_means_no_restriction() {
        let p = OutputPolicy::new()
            .with_allowed(Vec::<String>::new())
            .unwrap();
        assert!(p.allowed_patterns().is_none());
        assert!(p.check(&[("anything/at/all.txt", "x")]).is_ok());
    }

    #[test]
    fn bad_glob_is_reported() {
        let e = OutputPolicy::new().with_allowed(["src/[a"]).unwrap_err();
        assert_eq!(e.pattern, "src/[a");
        assert!(e.to_string().contains("not a valid glob"));
    }

    #[test]
    fn duplicates_after_normalising_and_ignoring_case() {
        let p = OutputPolicy::new();
        for (a, b) in [
            ("a", "a"),
            ("./a", "a"),
            ("src/A.rs", "src/a.rs"),
            ("x//y", "x/y"),
        ] {
            let v = p.check(&[(a, "1"), (b, "2")]).unwrap_err().violations;
            assert_eq!(
                v,
                vec![Violation::Duplicate {
                    path: b.into(),
                    first: a.into()
                }],
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn file_and_directory_clash() {
        let v = OutputPolicy::new()
            .check(&[("a", "1"), ("A/b", "2")])
            .unwrap_err()
            .violations;
        assert_eq!(
            v,
            vec![Violation::FileDirectoryClash {
                path: "a".into(),
                other: "A/b".into()
            }]
        );
    }

    #[test]
    fn size_and_count_limits() {
        let p = OutputPolicy {
            max_files: 2,
            max_file_bytes: 10,
            max_total_bytes: 15,
            ..OutputPolicy::new()
        };
        assert!(p.check(&[("a", "0123456789"), ("b", "01234")]).is_ok());
        let v = p
            .check(&[("a", "0123456789x"), ("b", "0123"), ("c", "")])
            .unwrap_err()
            .violations;
        assert_eq!(
            v,
            vec![
                Violation::TooManyFiles { count: 3, max: 2 },
                Violation::FileTooLarge {
                    path: "a".into(),
                    bytes: 11,
                    max: 10
                },
            ]
        );
        let v = p
            .check(&[("a", "0123456789"), ("b", "0123456")])
            .unwrap_err()
            .violations;
        assert_eq!(v, vec![Violation::TotalTooLarge { bytes: 17, max: 15 }]);
    }

    #[test]
    fn defaults() {
        let p = OutputPolicy::default();
        assert_eq!(p.max_files, 50);
        assert_eq!(p.max_file_bytes, 256 * 1024);
        assert_eq!(p.max_total_bytes, 1024 * 1024);
        assert!(p.allowed_patterns().is_none());
        let big = "x".repeat(256 * 1024 + 1);
        assert!(matches!(
            p.check(&[("big.txt", big.as_str())])
                .unwrap_err()
                .violations[0],
            Violation::FileTooLarge { .. }
        ));
    }

    #[test]
    fn invalid_utf8_content() {
        let files: [(&str, &[u8]); 2] = [("ok.txt", b"fine"), ("bad.bin", b"ab\xffcd")];
        let v = OutputPolicy::new().check(&files).unwrap_err().violations;
        assert_eq!(
            v,
            vec![Violation::InvalidUtf8 {
                path: "bad.bin".into(),
                offset: 2
            }]
        );
    }

    #[test]
    fn every_violation_is_reported_in_one_error() {
        let files = [
            ("/etc/passwd", "x"),
            ("../up", "x"),
            (".git/config", "x"),
            (".github/workflows/x.yml", "x"),
            ("ok.txt", "x"),
            ("OK.txt", "x"),
        ];
        let e = OutputPolicy::new().check(&files).unwrap_err();
        assert_eq!(e.violations.len(), 5, "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("the model's answer was refused and nothing was written (5 problems):")
        );
        for needle in [
            "/etc/passwd",
            "../up",
            ".git/config",
            ".github/workflows/x.yml",
            "OK.txt",
        ] {
            assert!(msg.contains(needle), "{needle} missing from {msg}");
        }
        assert_eq!(msg.lines().count(), 6);
    }

    #[test]
    fn check_answer_uses_the_same_rules() {
        let files = vec![
            AnswerFile {
                path: "./src/a.rs".into(),
                content: "fn a() {}".into(),
            },
            AnswerFile {
                path: "src/b.rs".into(),
                content: String::new(),
            },
        ];
        let safe = OutputPolicy::new().check_answer(&files).unwrap();
        assert_eq!(safe[0].path, "src/a.rs");
        assert_eq!(safe[0].content, "fn a() {}");
        assert_eq!(safe.len(), 2);
    }

    fn assert_safe(path: &str) {
        assert!(!path.is_empty());
        assert!(!path.starts_with('/'));
        assert!(!path.contains('\\'));
        let b = path.as_bytes();
        assert!(
            !(b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'),
            "{path}"
        );
        let comps: Vec<&str> = path.split('/').collect();
        assert!(
            comps
                .iter()
                .all(|c| !c.is_empty() && *c != "." && *c != ".."),
            "{path}"
        );
        assert!(comps.iter().all(|c| !is_dot_git(c)), "{path}");
        assert!(!comps[0].eq_ignore_ascii_case(".github"), "{path}");
        assert!(
            !comps[0].to_ascii_lowercase().starts_with(".git/"),
            "{path}"
        );
    }

    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("src".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("".to_string()),
            Just(".git".to_string()),
            Just(".GIT".to_string()),
            Just(".git.".to_string()),
            Just("git~1".to_string()),
            Just(".github".to_string()),
            Just(".GitHub".to_string()),
            Just("C:".to_string()),
            Just("x\\..".to_string()),
            Just("\\".to_string()),
            Just("...".to_string()),
            "[a-zA-Z0-9._~:\\- ]{1,8}",
        ]
    }

    proptest! {
        #[test]
        fn accepted_paths_are_safe(
            lead in prop_oneof![Just(""), Just("/"), Just("./"), Just("\\"), Just("//")],
            comps in proptest::collection::vec(component(), 1..6),
        ) {
            let path = format!("{lead}{}", comps.join("/"));
            if let Ok(files) = OutputPolicy::new().check(&[(path.as_str(), "x")]) {
                assert_safe(&files[0].path);
            }
        }

        #[test]
        fn arbitrary_strings_never_escape(path in "[./\\\\a-cgGiItThH:~\\x00\\n ]{0,24}") {
            if let Ok(files) = OutputPolicy::new().check(&[(path.as_str(), "x")]) {
                assert_safe(&files[0].path);
                prop_assert!(!files[0].path.chars().any(char::is_control));
            }
        }
    }
}
