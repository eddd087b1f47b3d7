//! The reference host for the AS2 connector component: wasmtime, real HTTP,
//! a file-backed key store, an embedded state database, sandbox limits.

pub mod allocator;
pub mod blobs;
pub mod client;
pub mod conformance;
pub mod connections;
pub mod connector;
pub mod console;
pub mod demo;
pub mod describe;
pub mod endpoint_info;
pub mod faults;
pub mod files;
pub mod host;
pub mod hostkey;
pub mod inbox;
pub mod keystore;
pub mod outgoing;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod state;
pub mod station;
pub mod tls;
