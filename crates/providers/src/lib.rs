//! Messengers: the ways Tessera's codes reach phones.

pub mod console;

pub use console::ConsoleMessenger;
