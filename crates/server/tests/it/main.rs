//! Tessera's HTTP API, tested over real HTTP against the server running in-process
//! (and, in `cli`, as the real binary). One test binary for the whole crate.

mod actions;
mod applications;
mod browser;
mod cli;
mod connections;
mod crash;
mod enrolment;
mod flows;
mod forms;
mod limits;
mod login;
mod messengers;
mod multi_instance;
mod oidc;
mod pages;
mod post_login;
mod sdk;
mod sealing;
mod signin;
mod system;
mod tokens;
mod two_factor;
mod units;
mod users;
mod verify;
