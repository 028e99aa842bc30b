//! The offline front end: YAML with positions, loading, diagnostics that name `file:line:col`,
//! the server's expression language, rendering the agent template, validation and the JSON
//! Schemas. Nothing here touches the network.

pub mod diagnostics;
pub mod expr;
pub mod load;
pub mod par;
pub mod render;
pub mod schema;
pub mod strict;
pub mod validate;
pub mod yaml;
