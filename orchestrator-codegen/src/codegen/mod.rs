//! The Codegen agent client: [`CodegenClient`] implements the core's
//! [`CodingAgent`](orchestrator_core::agent::CodingAgent).

mod client;

pub use client::CodegenClient;
