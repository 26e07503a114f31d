//! Pure decisions of a run in progress: which tasks a failure blocks (or a retry unblocks),
//! whether to start the next wave, the ETA, and which workers touched the same paths.

use crate::plan::{Level, State, Task, ready};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// State changes that follow from dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Propagation {
    /// (task, reason): queued tasks whose dependency failed or is blocked.
    pub block: Vec<(String, String)>,
    /// Blocked tasks none of whose dependencies is failed or blocked any more (a person
    /// re-queued the failure): back to queued.
    pub unblock: Vec<String>,
}

/// Computes blocking to a fixpoint, so a failure early in a chain blocks the whole chain.
pub fn propagate(tasks: &[Task], states: &BTreeMap<String, State>) -> Propagation {
    let mut now = states.clone();
    let bad = |s: Option<&State>| matches!(s, Some(State::Failed | State::Blocked));
    let mut result = Propagation::default();
    // Unblock first, to a fixpoint: a re-queued failure frees its whole chain.
    loop {
        let mut changed = false;
        for t in tasks {
            if now.get(&t.id) == Some(&State::Blocked)
                && !t.dependencies.iter().any(|d| bad(now.get(d)))
            {
                now.insert(t.id.clone(), State::Queued);
                result.unblock.push(t.id.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    loop {
        let mut changed = false;
        for t in tasks {
            if now.get(&t.id) != Some(&State::Queued) {
                continue;
            }
            if let Some(dep) = t.dependencies.iter().find(|d| bad(now.get(*d))) {
                let why = match now.get(dep) {
                    Some(State::Failed) => format!("`{dep}` failed"),
                    _ => format!("`{dep}` is blocked"),
                };
                now.insert(t.id.clone(), State::Blocked);
                result.unblock.retain(|u| u != &t.id);
                if !result.block.iter().any(|(b, _)| b == &t.id) {
                    result.block.push((t.id.clone(), why));
                }
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // A task both unblocked and re-blocked simply stays blocked: no change to write.
    result
        .unblock
        .retain(|u| !result.block.iter().any(|(b, _)| b == u));
    result
        .block
        .retain(|(b, _)| states.get(b) != Some(&State::Blocked));
    result
}

/// Minutes past a task's `timeout` before a `status:running` label is taken for a dead job.
pub const STALE_GRACE_MINUTES: u64 = 10;

/// Tasks labelled running whose issue has not changed for longer than their job may live
/// (`timeout` plus a grace): the job was cancelled or timed out without reporting back.
pub fn stale_running(
    tasks: &[Task],
    states: &BTreeMap<String, State>,
    last_change: &BTreeMap<String, u64>,
    now: u64,
) -> Vec<String> {
    tasks
        .iter()
        .filter(|t| states.get(&t.id) == Some(&State::Running))
        .filter(|t| {
            let limit = (u64::from(t.template.timeout) + STALE_GRACE_MINUTES) * 60;
            last_change
                .get(&t.id)
                .is_some_and(|at| now.saturating_sub(*at) > limit)
        })
        .map(|t| t.id.clone())
        .collect()
}

/// A short fingerprint of every task's state: the same fingerprint means no progress.
pub fn fingerprint(states: &BTreeMap<String, State>) -> String {
    // FNV-1a: stable across runs and versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, state) in states {
        for b in id
            .bytes()
            .chain([b'='])
            .chain(state.as_str().bytes())
            .chain([b';'])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// What aggregate should do about the next wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextWave {
    /// Start a workflow run for these ready tasks.
    Dispatch(Vec<String>),
    /// Workers are still running; their run's aggregate takes it from here.
    Wait,
    /// Ready work exists but this very state already started a wave: do not loop.
    NoProgress,
    /// Nothing can start: all done, or only failed/blocked work is left.
    Nothing,
}

pub fn next_wave(
    tasks: &[Task],
    states: &BTreeMap<String, State>,
    level: Level,
    last_dispatched: Option<&str>,
) -> NextWave {
    let state = |id: &str| states.get(id).copied().unwrap_or(State::Queued);
    let running = tasks
        .iter()
        .filter(|t| state(&t.id) == State::Running)
        .count();
    if running > 0 {
        return NextWave::Wait;
    }
    let ready: Vec<String> = ready(tasks, state, level)
        .into_iter()
        .map(|t| t.id.clone())
        .collect();
    if ready.is_empty() {
        return NextWave::Nothing;
    }
    if last_dispatched == Some(fingerprint(states).as_str()) {
        return NextWave::NoProgress;
    }
    NextWave::Dispatch(ready)
}

/// Time left: the mean duration of finished workers times the waves still needed.
pub fn eta(durations: &[Duration], left: usize, level: Level) -> Option<Duration> {
    if durations.is_empty() || left == 0 {
        return None;
    }
    let mean = durations.iter().sum::<Duration>() / durations.len() as u32;
    let waves = left.div_ceil(level.get()) as u32;
    Some(mean * waves)
}

/// Paths written by more than one worker: path → the workers (issue numbers), sorted.
pub fn overlaps(written: &BTreeMap<u64, Vec<String>>) -> BTreeMap<String, Vec<u64>> {
    let mut by_path: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (issue, paths) in written {
        for p in paths {
            by_path.entry(p.clone()).or_default().insert(*issue);
        }
    }
    by_path
        .into_iter()
        .filter(|(_, who)| who.len() > 1)
        .map(|(p, who)| (p, who.into_iter().collect()))
        .collect()
}

/// Seconds since the epoch of an RFC 3339 UTC time as GitHub writes it (`2026-11-27T22:18:24Z`).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let days = crate::llm::wait::days_from_civil(y, m, d);
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(super::parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::parse_rfc3339("2026-11-27T22:18:24Z"),
            Some(1_795_817_904)
        );
        assert_eq!(
            super::parse_rfc3339("2000-02-29T12:00:00Z"),
            Some(951_825_600)
        );
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }

    use super::*;
    use crate::plan::plan;
    use crate::spec::parse_document;

    fn chain() -> Vec<Task> {
        let doc = r#"{"tasks":[{"id":"a"},{"id":"b","dependencies":["a"]},{"id":"c","dependencies":["b"]},{"id":"d"}]}"#;
        let (s, src) = parse_document(doc).unwrap();
        plan(&s, &src, Level::MEDIUM).unwrap().tasks
    }

    fn states(pairs: &[(&str, State)]) -> BTreeMap<String, State> {
        pairs
            .iter()
            .map(|(k, v)| (format!("tasks/{k}"), *v))
            .collect()
    }

    #[test]
    fn a_failure_blocks_its_whole_chain_with_reasons() {
        let p = propagate(
            &chain(),
            &states(&[
                ("a", State::Failed),
                ("b", State::Queued),
                ("c", State::Queued),
                ("d", State::Queued),
            ]),
        );
        assert_eq!(
            p.block,
            vec![
                ("tasks/b".to_string(), "`tasks/a` failed".to_string()),
                ("tasks/c".to_string(), "`tasks/b` is blocked".to_string())
            ]
        );
        assert!(p.unblock.is_empty());
    }

    #[test]
    fn re_queuing_the_failure_unblocks_the_chain() {
        let p = propagate(
            &chain(),
            &states(&[
                ("a", State::Queued),
                ("b", State::Blocked),
                ("c", State::Blocked),
                ("d", State::Completed),
            ]),
        );
        assert_eq!(
            p.unblock,
            vec!["tasks/b".to_string(), "tasks/c".to_string()]
        );
        assert!(p.block.is_empty());
    }

    #[test]
    fn next_wave_dispatches_once_per_state() {
        let tasks = chain();
        let s = states(&[
            ("a", State::Completed),
            ("b", State::Queued),
            ("c", State::Queued),
            ("d", State::Completed),
        ]);
        assert_eq!(
            next_wave(&tasks, &s, Level::MEDIUM, None),
            NextWave::Dispatch(vec!["tasks/b".into()])
        );
        let fp = fingerprint(&s);
        assert_eq!(
            next_wave(&tasks, &s, Level::MEDIUM, Some(&fp)),
            NextWave::NoProgress
        );
        let running = states(&[
            ("a", State::Completed),
            ("b", State::Running),
            ("c", State::Queued),
            ("d", State::Completed),
        ]);
        assert_eq!(
            next_wave(&tasks, &running, Level::MEDIUM, None),
            NextWave::Wait
        );
        let stuck = states(&[
            ("a", State::Failed),
            ("b", State::Blocked),
            ("c", State::Blocked),
            ("d", State::Completed),
        ]);
        assert_eq!(
            next_wave(&tasks, &stuck, Level::MEDIUM, None),
            NextWave::Nothing
        );
    }

    #[test]
    fn running_past_timeout_and_grace_is_stale() {
        let tasks = chain();
        let s = states(&[
            ("a", State::Running),
            ("b", State::Queued),
            ("d", State::Running),
        ]);
        let limit = (u64::from(tasks[0].template.timeout) + STALE_GRACE_MINUTES) * 60;
        let changed: BTreeMap<String, u64> = [
            ("tasks/a".to_string(), 1000),
            ("tasks/d".to_string(), 1000 + limit),
        ]
        .into();
        assert_eq!(
            stale_running(&tasks, &s, &changed, 1000 + limit + 1),
            vec!["tasks/a".to_string()]
        );
        assert!(stale_running(&tasks, &s, &changed, 1000 + limit).is_empty());
    }

    #[test]
    fn fingerprints_differ_when_any_state_differs() {
        let a = states(&[("a", State::Completed), ("b", State::Queued)]);
        let b = states(&[("a", State::Completed), ("b", State::Failed)]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
    }

    #[test]
    fn eta_is_mean_duration_times_waves_left() {
        let d = [Duration::from_secs(60), Duration::from_secs(120)];
        assert_eq!(eta(&d, 250, Level::MASSIVE), Some(Duration::from_secs(270)));
        assert_eq!(eta(&[], 5, Level::MASSIVE), None);
        assert_eq!(eta(&d, 0, Level::MASSIVE), None);
    }

    #[test]
    fn overlaps_list_paths_of_two_or_more_workers() {
        let mut w = BTreeMap::new();
        w.insert(5, vec!["src/a.rs".to_string(), "README.md".to_string()]);
        w.insert(6, vec!["README.md".to_string()]);
        w.insert(7, vec!["src/b.rs".to_string()]);
        let o = overlaps(&w);
        assert_eq!(o.len(), 1);
        assert_eq!(o["README.md"], vec![5, 6]);
    }
}
