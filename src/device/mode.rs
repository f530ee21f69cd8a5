//! How a group's messages are sealed: pairwise envelopes, sender keys, or the one that suits
//! the group's size.

use crate::group::View;

/// How this device seals its messages to a group (receiving takes both, always).
///
/// Pairwise envelopes cost O(n) per message and are deniable; sender keys cost O(n) once
/// per chain (when the view changes) and O(1) per message, and are signed, so not deniable.
/// See `spec/encryption.md`, "Two modes", for their security properties side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageMode {
    /// Every message is an envelope with a slot per recipient.
    Pairwise,
    /// Every message is encrypted once, under this device's sender chain.
    SenderKeys,
    /// Sender keys when the view has more than `above` members, else pairwise.
    Automatic {
        /// The largest view sealed pairwise.
        above: u8,
    },
}

impl Default for MessageMode {
    /// `Automatic { above: 32 }`: at 33 members a sender-key message is already a third
    /// the size of an envelope.
    fn default() -> Self {
        Self::Automatic { above: 32 }
    }
}

impl MessageMode {
    /// Whether a message to `view` goes by sender keys.
    pub fn uses_sender_keys(self, view: &View) -> bool {
        match self {
            Self::Pairwise => false,
            Self::SenderKeys => true,
            Self::Automatic { above } => view.len() > usize::from(above),
        }
    }

    /// The stored form: 0 pairwise, 1 sender keys, 2 automatic with its threshold.
    pub fn code(self) -> [u8; 2] {
        match self {
            Self::Pairwise => [0, 0],
            Self::SenderKeys => [1, 0],
            Self::Automatic { above } => [2, above],
        }
    }

    /// Reads [`code`](Self::code).
    pub fn from_code(code: [u8; 2]) -> Option<Self> {
        match code {
            [0, 0] => Some(Self::Pairwise),
            [1, 0] => Some(Self::SenderKeys),
            [2, above] => Some(Self::Automatic { above }),
            _ => None,
        }
    }
}
