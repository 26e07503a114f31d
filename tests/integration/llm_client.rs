//! The LLM client against the fake LLM server (being built).
