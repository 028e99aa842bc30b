//! The platform database: the restaurants table and the ids written back (not yet written).
