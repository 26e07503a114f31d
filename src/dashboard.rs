//! The progress dashboard in the parent issue's marked region. Pure: it renders what it is
//! given, so split, workers and aggregate all draw the same picture from the same facts.

use crate::markers::defuse;
use crate::plan::State;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub issue: u64,
    pub task: String,
    pub title: String,
    pub state: State,
    /// Pull request number and URL.
    pub pr: Option<(u64, String)>,
    pub duration: Option<Duration>,
    pub tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dashboard {
    pub rows: Vec<Row>,
    pub level: usize,
    pub elapsed: Option<Duration>,
    pub eta: Option<Duration>,
    /// What happens next, in one sentence.
    pub next: Option<String>,
    /// Things a reader must know (sub-issue limit reached, tasks no longer in the spec…).
    pub notes: Vec<String>,
    /// Who drew it: `split`, `worker #57`, `aggregate`.
    pub updated_by: String,
    pub run_url: Option<String>,
    /// The integration pull request (number, URL), when there is one.
    pub integration: Option<(u64, String)>,
    /// Paths more than one worker wrote: path → worker issues.
    pub overlaps: Vec<(String, Vec<u64>)>,
    /// Workers whose branch could not be merged into the integration branch.
    pub merge_conflicts: Vec<u64>,
    /// A hidden marker line kept at the end of the region (run state for later rounds).
    pub hidden: Option<String>,
}

/// Counts per state, in the order they are shown.
pub fn counts(rows: &[Row]) -> [(State, usize); 5] {
    let n = |s: State| rows.iter().filter(|r| r.state == s).count();
    [
        (State::Completed, n(State::Completed)),
        (State::Running, n(State::Running)),
        (State::Queued, n(State::Queued)),
        (State::Failed, n(State::Failed)),
        (State::Blocked, n(State::Blocked)),
    ]
}

/// Whole percent of workers that reached an end (completed), rounded down so 100% means all.
pub fn progress(rows: &[Row]) -> usize {
    if rows.is_empty() {
        return 0;
    }
    rows.iter().filter(|r| r.state == State::Completed).count() * 100 / rows.len()
}

fn icon(s: State) -> &'static str {
    match s {
        State::Completed => "✅",
        State::Running => "🔄",
        State::Queued => "⏳",
        State::Failed => "❌",
        State::Blocked => "⛔",
    }
}

pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, s % 3600 / 60)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table cell from untrusted text: no pipes or newlines to break the table, no mentions.
fn cell(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let short: String = if one_line.chars().count() > 60 {
        one_line.chars().take(59).chain(['…']).collect()
    } else {
        one_line
    };
    defuse(&short).replace('|', "\\|")
}

pub fn render(d: &Dashboard) -> String {
    let total = d.rows.len();
    let counts = counts(&d.rows);
    let done = counts[0].1;
    let pct = progress(&d.rows);
    let mut out = String::new();
    out.push_str(&format!(
        "### ⚡ Parallel execution: {done} of {total} done ({pct}%)\n\n"
    ));
    let filled = pct / 5;
    out.push_str(&format!(
        "`{}{}` {pct}%\n\n",
        "█".repeat(filled),
        "░".repeat(20 - filled)
    ));
    out.push_str("| total | ✅ completed | 🔄 running | ⏳ queued | ❌ failed | ⛔ blocked |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!("| {total} |"));
    for (_, n) in counts {
        out.push_str(&format!(" {n} |"));
    }
    out.push_str("\n\n");

    let mut facts = Vec::new();
    if let Some(e) = d.elapsed {
        facts.push(format!("elapsed {}", format_duration(e)));
    }
    match d.eta {
        Some(e) if done < total => facts.push(format!("ETA ~{}", format_duration(e))),
        _ => {}
    }
    if d.level > 0 {
        facts.push(format!("at most {} workers at once", d.level));
    }
    if !facts.is_empty() {
        out.push_str(&format!("{}\n\n", facts.join(" · ")));
    }
    if let Some(next) = &d.next {
        out.push_str(&format!("**Next:** {next}\n\n"));
    }
    for note in &d.notes {
        out.push_str(&format!("> [!NOTE]\n> {note}\n\n"));
    }

    if total > 0 {
        out.push_str("```mermaid\npie showData title Workers by status\n");
        for (state, n) in counts.iter().filter(|(_, n)| *n > 0) {
            out.push_str(&format!("    \"{state}\" : {n}\n"));
        }
        out.push_str("```\n\n");

        // Open by default while small; a 100-row table stays folded.
        let open = if total <= 30 { " open" } else { "" };
        out.push_str(&format!(
            "<details{open}><summary>All {total} workers</summary>\n\n"
        ));
        out.push_str("| issue | task | status | pull request | time | tokens |\n");
        out.push_str("|---|---|---|---|---:|---:|\n");
        for r in &d.rows {
            let pr =
                r.pr.as_ref()
                    .map_or_else(|| "—".to_string(), |(n, url)| format!("[#{n}]({url})"));
            let time = r.duration.map_or_else(|| "—".to_string(), format_duration);
            let tokens = r.tokens.map_or_else(|| "—".to_string(), thousands);
            out.push_str(&format!(
                "| #{} | `{}` {} | {} {} | {pr} | {time} | {tokens} |\n",
                r.issue,
                r.task.replace('`', "'"),
                cell(&r.title),
                icon(r.state),
                r.state
            ));
        }
        out.push_str("\n</details>\n\n");
    }
    if d.integration.is_some() || !d.overlaps.is_empty() || !d.merge_conflicts.is_empty() {
        out.push_str(&integration_section(d));
    }
    let by = match &d.run_url {
        Some(url) => format!("[{}]({url})", d.updated_by),
        None => d.updated_by.clone(),
    };
    out.push_str(&format!(
        "<sub>Updated by {by}. This section is rewritten by parallel-orchestrator; edit outside it.</sub>\n"
    ));
    if let Some(h) = &d.hidden {
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// The integration PR, and what did not fit together: the same Markdown in the dashboard
/// and in the integration PR.
pub fn integration_section(d: &Dashboard) -> String {
    let mut out = String::from("#### Integration\n\n");
    if let Some((n, url)) = &d.integration {
        out.push_str(&format!(
            "One pull request with every completed worker merged: [#{n}]({url}). Review it, or the workers' own pull requests.\n\n"
        ));
    }
    if !d.merge_conflicts.is_empty() {
        let list: Vec<String> = d.merge_conflicts.iter().map(|n| format!("#{n}")).collect();
        out.push_str(&format!(
            "❗ Not merged (conflicts with what was merged before): {}. Resolve them in their own pull requests.\n\n",
            list.join(", ")
        ));
    }
    if !d.overlaps.is_empty() {
        out.push_str("| path written by more than one worker | workers |\n|---|---|\n");
        for (path, who) in &d.overlaps {
            let who: Vec<String> = who.iter().map(|n| format!("#{n}")).collect();
            out.push_str(&format!(
                "| `{}` | {} |\n",
                path.replace('`', "'").replace('|', "\\|"),
                who.join(", ")
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(issue: u64, state: State) -> Row {
        Row {
            issue,
            task: format!("n/t{issue}"),
            title: format!("Task {issue}"),
            state,
            pr: None,
            duration: None,
            tokens: None,
        }
    }

    #[test]
    fn counts_and_progress() {
        let rows = vec![
            row(1, State::Completed),
            row(2, State::Running),
            row(3, State::Queued),
        ];
        assert_eq!(progress(&rows), 33);
        assert_eq!(counts(&rows)[0], (State::Completed, 1));
        assert_eq!(progress(&[]), 0);
    }

    #[test]
    fn renders_totals_pie_and_rows_with_untrusted_titles_made_safe() {
        let mut r = row(5, State::Completed);
        r.title = "a | b @octocat\nnext".into();
        r.pr = Some((9, "https://github.com/o/r/pull/9".into()));
        r.duration = Some(Duration::from_secs(192));
        r.tokens = Some(12345);
        let d = Dashboard {
            rows: vec![r, row(6, State::Failed)],
            level: 30,
            updated_by: "split".into(),
            ..Default::default()
        };
        let md = render(&d);
        assert!(
            md.starts_with("### ⚡ Parallel execution: 1 of 2 done (50%)"),
            "{md}"
        );
        assert!(md.contains("| 2 | 1 | 0 | 0 | 1 | 0 |"), "{md}");
        assert!(
            md.contains("    \"completed\" : 1\n    \"failed\" : 1\n"),
            "{md}"
        );
        assert!(!md.contains("\"queued\""), "zero slices are left out");
        assert!(md.contains("| #5 | `n/t5` a \\| b @\u{200B}octocat next | ✅ completed | [#9](https://github.com/o/r/pull/9) | 3m 12s | 12,345 |"), "{md}");
    }

    #[test]
    fn empty_dashboard_has_no_pie() {
        let md = render(&Dashboard::default());
        assert!(md.contains("0 of 0 done (0%)"));
        assert!(!md.contains("mermaid"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m 05s");
        assert_eq!(format_duration(Duration::from_secs(3725)), "1h 02m");
    }
}
