//! Tessera's domain: who users are, how they prove it, and what is remembered about it.
//!
//! Nothing here speaks HTTP or SQL, and nothing reads the clock: every function that
//! depends on time takes `now`. Storage is reached through the traits in [`store`].
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod actions;
pub mod apikey;
pub mod audit;
pub mod base32;
pub mod error;
pub mod flows;
pub mod ids;
pub mod login;
pub mod messaging;
pub mod messengers;
pub mod oidc;
pub mod password;
pub mod phone;
pub mod random;
pub mod seal;
pub mod secret;
pub mod service;
pub mod signin;
pub mod store;
pub mod time;
pub mod tokens;
pub mod totp;
pub mod twofactor;
pub mod user;
pub mod validation;
pub mod verify;

pub use error::CoreError;
pub use time::Timestamp;
