//! parallel-orchestrator: fan one piece of work out across up to 100 GitHub Actions jobs,
//! each driven by an LLM, and gather the results back.
//!
//! Pure logic (spec parsing, planning, rendering) lives apart from I/O (GitHub, the LLM,
//! the Actions runtime files) so it can be tested without a network.

pub mod actions;
pub mod cli;
pub mod commands;
pub mod context;
pub mod dashboard;
pub mod errors;
pub mod github;
pub mod labels;
pub mod llm;
pub mod markers;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod prompt;
pub mod secret;
pub mod spec;

use std::process::ExitCode;

/// The whole program: parse, run, map the outcome to an exit code.
pub fn main() -> ExitCode {
    cli::drop_empty_inputs();
    init_logging();
    let command = match cli::parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(e) => {
            // clap prints usage errors itself and exits 2 for them (0 for --help/--version).
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match run(command) {
        Ok(code) => code,
        Err(error) if errors::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let runtime = actions::Runtime::from_env();
            runtime.annotate(
                actions::Level::Error,
                &format!("{error:#}"),
                &actions::Position::default(),
            );
            errors::exit_code(&error)
        }
    }
}

fn run(command: cli::Command) -> anyhow::Result<ExitCode> {
    use cli::Command;
    match command {
        Command::Plan(args) => commands::plan::run(&args, &mut std::io::stdout().lock()),
        Command::Split(args) => {
            let rt = actions::Runtime::from_env();
            block_on(commands::split::run(&args, &rt))
        }
        Command::Worker(args) => {
            let rt = actions::Runtime::from_env();
            block_on(commands::worker::run(&args, &rt))
        }
        Command::Aggregate(args) => {
            let rt = actions::Runtime::from_env();
            block_on(commands::aggregate::run(&args, &rt))
        }
    }
}

fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Logs go to stderr, one readable line each; the runner adds timestamps itself.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARALLEL_ORCHESTRATOR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,octocrab=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
