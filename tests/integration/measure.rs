//! Measurements for the notes, not assertions about speed: run them by hand with
//! `cargo test --release --test integration measure -- --ignored --nocapture`.
//! They print the GitHub requests and the peak memory of one worker (via /usr/bin/time).

use crate::support::fake_github::FakeGitHub;
use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::orchestrate::{TOKEN, command, job};

#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
fn measure_one_worker() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    // A repository of 5,000 files and a README, so the prompt's repository view is full.
    let files: Vec<(String, String)> = (0..5000)
        .map(|i| (format!("src/m{i:04}.rs"), format!("// {i}\n")))
        .collect();
    let mut seed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let readme = "# Project\n".repeat(2000);
    seed.push(("README.md", &readme));
    gh.seed_files(&seed);
    let spec = r#"{"tasks":[{"id":"big","task":"Write the big module"}]}"#;
    let parent = gh.create_issue(
        "Parent",
        &format!("```json\n{spec}\n```"),
        &["parallel-execution"],
    );
    assert_eq!(
        job(&gh, "split", &[("INPUT_PARENT_ISSUE", &parent.to_string())])
            .ran
            .code,
        0
    );
    let issue = gh.issues_labeled(&["copilot-worker"])[0].number;

    // The largest answer the output policy accepts: 4 files of 256 KiB.
    let llm = FakeLlm::start();
    let content = "x".repeat(256 * 1024 - 1);
    let answer: Vec<(String, String)> = (0..4)
        .map(|i| (format!("gen/f{i}.txt"), content.clone()))
        .collect();
    let answer: Vec<(&str, &str)> = answer
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    llm.push(Reply::answer("big", &answer));

    let before = gh.requests().len();
    let writes_before = gh.writes();
    let (cmd, _dir) = command(
        &gh,
        "worker",
        &[
            ("INPUT_WORKER_ISSUE", &issue.to_string()),
            ("INPUT_LLM_BASE_URL", &llm.url()),
        ],
    );
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("peak-rss-kib=%M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    timed.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    timed.current_dir(cmd.get_current_dir().unwrap());
    let out = timed
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .unwrap();
    let requests = gh.requests().len() - before;
    let writes = gh.writes() - writes_before;
    println!(
        "worker: {requests} GitHub requests ({writes} writes, {} reads), 1 LLM request, peak RSS {rss} KiB",
        requests - writes
    );
}
