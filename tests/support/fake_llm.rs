//! A scripted fake OpenAI-compatible LLM server (being built).
