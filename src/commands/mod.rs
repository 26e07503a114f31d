//! One module per mode. Each turns its arguments into a plain request, then does the work.

pub mod aggregate;
pub mod plan;
pub mod split;
pub mod worker;

use crate::cli::GitHubArgs;

/// Modes that are not built yet say so plainly instead of pretending.
pub fn not_built(mode: &str, _github: &GitHubArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`{mode}` is not built yet in this version; `plan` works offline today")
}
