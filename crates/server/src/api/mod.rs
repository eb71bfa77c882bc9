//! HTTP handlers. Each parses its input into domain types, calls one `Identity` use
//! case with `now`, and puts the outcome into FusionAuth's wire shape.

pub mod applications;
pub mod flows;
pub mod inbound;
pub mod jwt;
pub mod login;
pub mod messengers;
pub mod oidc;
pub mod pages;
pub mod system;
pub mod two_factor;
pub mod users;
pub mod verify;
pub mod webhooks;
