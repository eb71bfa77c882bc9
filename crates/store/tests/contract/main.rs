//! The storage contract: every test runs against SQLite and PostgreSQL alike.

mod support;

mod actions;
mod connection;
mod flows;
mod login_failures;
mod messengers;
mod oidc;
mod tokens;
mod two_factor;
mod units;
mod users;
mod verify;
