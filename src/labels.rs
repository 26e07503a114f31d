//! The labels of INTERFACE.md: names, colours, descriptions, and reading a worker's state.

use crate::plan::State;

pub const WORKER: &str = "copilot-worker";
pub const TRIGGER: &str = "parallel-execution";

pub fn parent(n: u64) -> String {
    format!("parent:{n}")
}

pub fn status(state: State) -> String {
    format!("status:{state}")
}

/// Every label split makes sure exists: (name, colour, description).
pub fn all(parent_issue: u64) -> Vec<(String, &'static str, String)> {
    let mut v = vec![
        (
            WORKER.to_string(),
            "6f42c1",
            "A task of a parallel-orchestrator run".to_string(),
        ),
        (
            parent(parent_issue),
            "c5def5",
            format!("Worker of parent issue #{parent_issue}"),
        ),
    ];
    for (state, colour, what) in [
        (
            State::Queued,
            "ededed",
            "Waiting for its wave or its dependencies",
        ),
        (State::Running, "1d76db", "A worker job is on it"),
        (State::Completed, "0e8a16", "Done: its pull request is open"),
        (
            State::Failed,
            "d73a4a",
            "Failed after its retries; set status:queued to run it again",
        ),
        (State::Blocked, "e4e669", "A task it depends on failed"),
    ] {
        v.push((status(state), colour, what.to_string()));
    }
    v
}

/// A worker's state from its labels. Several status labels (a hand edit, or two jobs racing)
/// resolve to the most final one.
pub fn state_of(labels: &[String]) -> Option<State> {
    let has = |s: State| labels.iter().any(|l| l.eq_ignore_ascii_case(&status(s)));
    [
        State::Completed,
        State::Failed,
        State::Blocked,
        State::Running,
        State::Queued,
    ]
    .into_iter()
    .find(|s| has(*s))
}

/// The labels of a worker issue in `state`: the worker and parent labels, the one status
/// label, and any other labels it had (a person's labels are kept).
pub fn with_state(current: &[String], parent_issue: u64, state: State) -> Vec<String> {
    let mut out: Vec<String> = current
        .iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("status:"))
        .cloned()
        .collect();
    for must in [WORKER.to_string(), parent(parent_issue)] {
        if !out.iter().any(|l| l.eq_ignore_ascii_case(&must)) {
            out.push(must);
        }
    }
    out.push(status(state));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn seven_labels_with_colours() {
        let all = all(12);
        assert_eq!(all.len(), 7);
        assert!(
            all.iter()
                .any(|(n, _, d)| n == "parent:12" && d.contains("#12"))
        );
        assert!(all.iter().all(|(_, c, _)| c.len() == 6));
    }

    #[test]
    fn state_prefers_the_most_final_label() {
        assert_eq!(
            state_of(&v(&["copilot-worker", "status:running"])),
            Some(State::Running)
        );
        assert_eq!(
            state_of(&v(&["status:running", "status:completed"])),
            Some(State::Completed)
        );
        assert_eq!(state_of(&v(&["bug"])), None);
    }

    #[test]
    fn with_state_swaps_the_status_and_keeps_other_labels() {
        let out = with_state(
            &v(&["copilot-worker", "parent:3", "status:queued", "bug"]),
            3,
            State::Running,
        );
        assert_eq!(
            out,
            v(&["copilot-worker", "parent:3", "bug", "status:running"])
        );
        let out = with_state(&[], 3, State::Failed);
        assert_eq!(out, v(&["copilot-worker", "parent:3", "status:failed"]));
    }
}
