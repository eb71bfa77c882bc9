//! Messengers: the ways Tessera's codes reach phones and channels.
//!
//! Each vendor module speaks that vendor's wire format; [`router::Router`] is the
//! `Messenger` the rest of Tessera sees: it picks configured messengers by channel,
//! country and priority, retries what can be retried, fails over within a deadline,
//! and records every delivery.

pub mod console;
pub mod flow_effects;
mod generic;
mod http;
pub mod outbound;
mod plivo;
pub mod router;
pub mod signature;
mod slack;
mod twilio;
mod twilio_verify;

pub use console::ConsoleMessenger;
pub use router::{Router, RouterSettings};

/// Selects rustls' ring provider for this process (reqwest needs one before any
/// client is built). Safe to call any number of times.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
