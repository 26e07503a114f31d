//! One module per mode. Each turns its arguments into a plain request, then does the work.

pub mod aggregate;
pub mod plan;
pub mod split;
pub mod worker;
