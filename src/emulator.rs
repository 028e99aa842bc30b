//! (stage not yet written)
