//! The platform's API as a contract for the tools.
//!
//! A tool is an HTTP call sip-agent-server makes to the platform during a phone call; when its
//! target is wrong nothing fails until a customer calls. With `platform.openapi` set in
//! `sipform.yaml`, `validate` reads that OpenAPI 3 document ([`openapi`]) and checks, offline,
//! the request every tool makes ([`request`]) against the route it names ([`check`]): method
//! and path, query parameters and body keys (known, and the required ones sent), the `$res`
//! fields read back, and the model's parameters that are sent nowhere. A finding the project
//! accepts is waived in `platform.waivers`, with a reason every plan shows. [`probe`] is the live
//! counterpart (`doctor --tools`): an `OPTIONS` request to each target.

pub mod check;
pub mod openapi;
pub mod probe;
pub mod request;

pub use check::Finding;
pub use openapi::Api;
pub use request::Request;

// The settings' side lives with the other specs (the model is the lowest layer).
pub(crate) use crate::model::spec::{CheckKind, PlatformConfig, Waiver};
