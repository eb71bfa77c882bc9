//! HTTP handlers. Each reads its input through a typed wire shape (a `Deserialize` DTO
//! turned into domain types), calls one use case of a core service with `now`, and puts
//! the outcome into a `Serialize` DTO in FusionAuth's, Twilio's or OpenID's shape.

pub mod actions;
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
