//! Plan rendering: human text, JSON, Markdown (not yet written).
