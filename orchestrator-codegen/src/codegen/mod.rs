//! The Codegen agent client: [`CodegenClient`] implements the core's
//! [`CodingAgent`](orchestrator_core::agent::CodingAgent).

mod client;
mod search;

pub use client::CodegenClient;
