//! How a run ends: the exit code of INTERFACE.md, decided once, at the end.

use std::process::ExitCode;

/// Bad input from the user: usage, an invalid spec, a level outside 1-100, a missing token or
/// repository. Exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The exit code for an error: 2 when any cause is bad input, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    let bad_input = error.chain().any(|cause| {
        cause.is::<BadInput>()
            || cause.is::<crate::spec::SpecError>()
            || cause.is::<crate::commands::plan::SpecFailure>()
    });
    if bad_input {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// `plan … | head` closes our stdout early: that is the reader's choice, not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
