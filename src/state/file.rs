//! The JSON file state backend (not yet written).
