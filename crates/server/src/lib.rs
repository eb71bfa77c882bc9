//! Tessera's HTTP server: FusionAuth-shaped API routes over the core domain.

pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod connections;
pub mod error;
pub mod extract;
pub mod hashing;
pub mod metrics;
pub mod nul;
pub mod sealing;
pub mod telemetry;
pub mod templates;

pub use app::{AppState, Prepared, prepare, serve};
pub use config::Config;
