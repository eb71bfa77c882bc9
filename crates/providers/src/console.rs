//! The development messenger: prints each message to standard output and keeps the
//! most recent ones in memory (the test sink), so a person or a test can read the code.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use tessera_core::messaging::{Messenger, MessengerError, OutboundMessage, Receipt};

const KEEP: usize = 1000;

#[derive(Default)]
pub struct ConsoleMessenger {
    quiet: bool,
    sent: Mutex<VecDeque<OutboundMessage>>,
}

impl ConsoleMessenger {
    /// Keeps messages in memory without printing them (tests).
    pub fn quiet() -> Self {
        ConsoleMessenger { quiet: true, sent: Mutex::default() }
    }

    /// Messages sent so far, oldest first.
    pub fn sent(&self) -> Vec<OutboundMessage> {
        self.sent.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// The last message sent to `to` (E.164).
    pub fn last_to(&self, to: &str) -> Option<OutboundMessage> {
        self.sent.lock().ok()?.iter().rev().find(|m| m.to.as_str() == to).cloned()
    }
}

#[async_trait]
impl Messenger for ConsoleMessenger {
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, MessengerError> {
        if !self.quiet {
            // Development only: the console messenger exists to show the code.
            println!("[console messenger] {} to {}: {}", message.channel.as_str(), message.to.as_str(), message.text);
        }
        if let Ok(mut sent) = self.sent.lock() {
            if sent.len() == KEEP {
                sent.pop_front();
            }
            sent.push_back(message.clone());
        }
        Ok(Receipt::new("console", None))
    }
}
