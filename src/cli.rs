//! The command line: one subcommand per mode, every action input both a flag and its
//! `INPUT_*` variable (a flag wins over the variable, the variable over the default).

use crate::plan::Level;
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const ABOUT: &str = "Fan one piece of work out across up to 100 GitHub Actions jobs, each driven by an LLM, and gather the results back.";

const LONG_ABOUT: &str = "\
Fan one piece of work out across up to 100 GitHub Actions jobs, each driven by an LLM, and \
gather the results back.

A parent issue holds a workflow spec (a ```json or ```yaml block of nodes). `split` turns it \
into one worker issue per task and a job matrix; each `worker` job asks an LLM for the files of \
its task and opens a pull request; `aggregate` keeps a progress dashboard on the parent, starts \
the next wave and reports the verdict. `plan` shows offline what a spec expands to.

Every option is also read from its action input variable (INPUT_<NAME>, e.g. \
INPUT_PARALLELISM_LEVEL); empty variables count as unset. With no subcommand the mode comes \
from INPUT_MODE, as the container action runs it.";

const AFTER_HELP: &str = "\
Examples:
  parallel-orchestrator plan examples/fullstack.json
  parallel-orchestrator plan issue-body.md --parallelism-level massive --json
  GITHUB_REPOSITORY=o/r parallel-orchestrator split --parent-issue 123 --dry-run

Exit codes: 0 done, 1 the work failed, 2 bad input (usage, spec, level, token, repository).";

#[derive(Debug, Parser)]
#[command(
    name = "parallel-orchestrator",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The mode to run when no subcommand is given (the container action's `mode` input).
    #[arg(long, env = "INPUT_MODE", value_enum)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Split,
    Worker,
    Aggregate,
    Plan,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Split => "split",
            Mode::Worker => "worker",
            Mode::Aggregate => "aggregate",
            Mode::Plan => "plan",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read the parent issue's spec, create one worker issue per task, and output the job matrix
    /// of the tasks ready to run.
    Split(SplitArgs),
    /// Do one worker issue's task: ask the LLM, commit its files to a branch, open a pull request.
    Worker(WorkerArgs),
    /// Gather every worker's state into the parent's dashboard, start the next wave, report the
    /// verdict.
    Aggregate(AggregateArgs),
    /// Show offline what a spec expands to: tasks, waves, the first matrix and the GitHub budget.
    Plan(PlanArgs),
}

/// Options every mode that talks to GitHub shares.
#[derive(Debug, Clone, Args)]
pub struct GitHubArgs {
    /// Token for the REST API [default: $GITHUB_TOKEN].
    #[arg(
        long,
        env = "INPUT_GITHUB_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub github_token: Option<String>,

    /// Read and plan, print every write that would be made, and make none.
    #[arg(
        long,
        env = "INPUT_DRY_RUN",
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub dry_run: bool,
}

/// `parent_issue`, for the modes that work on a whole run.
#[derive(Debug, Clone, Args)]
pub struct ParentArg {
    /// The parent issue number [default: the issue of the event at $GITHUB_EVENT_PATH].
    #[arg(long, env = "INPUT_PARENT_ISSUE", value_name = "NUMBER")]
    pub parent_issue: Option<u64>,
}

/// `parallelism_level`.
#[derive(Debug, Clone, Args)]
pub struct LevelArg {
    /// Most workers in flight at once: small (10), medium (30), large (60), massive (100), or 1-100.
    #[arg(
        long,
        env = "INPUT_PARALLELISM_LEVEL",
        default_value = "medium",
        value_name = "LEVEL"
    )]
    pub parallelism_level: Level,
}

/// `base_branch`.
#[derive(Debug, Clone, Args)]
pub struct BaseBranchArg {
    /// Branch that pull requests target [default: the repository's default branch].
    #[arg(long, env = "INPUT_BASE_BRANCH", value_name = "BRANCH")]
    pub base_branch: Option<String>,
}

/// `integrate`.
#[derive(Debug, Clone, Args)]
pub struct IntegrateArg {
    /// Keep parallel/<parent>/integration with every completed worker branch merged, and one PR
    /// for it (in `plan`: count its merges in the budget).
    #[arg(
        long,
        env = "INPUT_INTEGRATE",
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_value = "true",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub integrate: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub github: GitHubArgs,
    #[command(flatten)]
    pub parent: ParentArg,
    #[command(flatten)]
    pub level: LevelArg,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub github: GitHubArgs,

    /// The worker issue this job works on (from the matrix).
    #[arg(long, env = "INPUT_WORKER_ISSUE", value_name = "NUMBER")]
    pub worker_issue: Option<u64>,

    /// OpenAI-compatible base URL; requests go to {base}/chat/completions.
    #[arg(
        long,
        env = "INPUT_LLM_BASE_URL",
        default_value = "https://models.github.ai/inference",
        value_name = "URL"
    )]
    pub llm_base_url: String,

    /// Model id.
    #[arg(
        long,
        env = "INPUT_LLM_MODEL",
        default_value = "openai/gpt-4.1-mini",
        value_name = "MODEL"
    )]
    pub llm_model: String,

    /// Bearer token for the LLM endpoint [default: the GitHub token].
    #[arg(
        long,
        env = "INPUT_LLM_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub llm_api_key: Option<String>,

    #[command(flatten)]
    pub base: BaseBranchArg,
}

#[derive(Debug, Clone, Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    pub github: GitHubArgs,
    #[command(flatten)]
    pub parent: ParentArg,
    /// Passed on when the next wave is dispatched.
    #[command(flatten)]
    pub level: LevelArg,
    #[command(flatten)]
    pub base: BaseBranchArg,
    #[command(flatten)]
    pub integrate: IntegrateArg,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// The spec: a JSON or YAML file, or an issue body in Markdown; `-` or nothing reads stdin.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub level: LevelArg,
    #[command(flatten)]
    pub integrate: IntegrateArg,

    /// Print the matrix split would emit for the first wave, the whole plan and the budget as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Removes empty `INPUT_*` variables: the runner sets every declared input, empty when not
/// given, and an empty value must mean "unset" (clap would try to parse it).
///
/// Must run before any other thread starts.
pub fn drop_empty_inputs() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| {
            k.to_string_lossy().starts_with("INPUT_") && v.to_string_lossy().trim().is_empty()
        })
        .map(|(k, _)| k)
        .collect();
    for key in empty {
        // SAFETY: called first thing in `main`, before the runtime or any thread exists.
        unsafe { std::env::remove_var(key) };
    }
}

/// Parses the command line; with no subcommand, the mode comes from `--mode` / `INPUT_MODE`
/// and the rest of the options from the environment.
pub fn parse(args: Vec<std::ffi::OsString>) -> Result<Command, clap::Error> {
    use clap::CommandFactory;
    let cli = Cli::try_parse_from(&args)?;
    if let Some(command) = cli.command {
        return Ok(command);
    }
    let Some(mode) = cli.mode else {
        return Err(Cli::command().error(
            clap::error::ErrorKind::MissingSubcommand,
            "no mode given: use a subcommand (split, worker, aggregate, plan) or set INPUT_MODE",
        ));
    };
    let argv0 = args
        .first()
        .cloned()
        .unwrap_or_else(|| "parallel-orchestrator".into());
    let cli = Cli::try_parse_from([argv0, mode.as_str().into()])?;
    Ok(cli.command.expect("a subcommand was given"))
}
