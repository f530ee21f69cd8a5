//! One simulated device: its keyring, replica, clock skew and sender chains, and how it
//! seals and opens in either message mode.

use crate::crypto::{
    ChainConfig, ChainId, ChainSealed, Envelope, Keyring, OpenError, Opened, Payload, SealOptions,
    SenderKeys, SenderPolicy,
};
use crate::group::Replica;
use crate::keys::MemberId;
use rand_core::CryptoRng;

pub(super) struct Device {
    pub(super) keyring: Keyring,
    pub(super) replica: Replica,
    pub(super) skew_ms: i64,
    pub(super) keys: SenderKeys,
}

/// A message as sealed, in either mode.
pub(super) enum Sealed {
    Envelope(Box<Envelope>),
    Chain(Box<ChainSealed>),
}

impl Sealed {
    /// The chain of a sender-key message, and whether this message hands it out.
    pub(super) fn chain(&self) -> Option<(ChainId, u32)> {
        match self {
            Self::Envelope(_) => None,
            Self::Chain(sealed) => Some((sealed.message.header.chain, sealed.message.header.index)),
        }
    }
}

/// Every sender's standing is reported, never refused: the simulator checks who can read.
const POLICY: SenderPolicy = SenderPolicy::ReportAll;

impl Device {
    pub(super) fn seal<R: CryptoRng + ?Sized>(
        &mut self,
        now: u64,
        text: &[u8],
        sender_keys: bool,
        rng: &mut R,
    ) -> Option<Sealed> {
        let (keyring, replica) = (&mut self.keyring, &mut self.replica);
        if sender_keys {
            let config = ChainConfig::default();
            let sealed = self.keys.seal(keyring, replica, now, text, config, rng);
            sealed.ok().map(|sealed| Sealed::Chain(Box::new(sealed)))
        } else {
            let options = SealOptions::default();
            let sealed = keyring.seal(replica, now, text, options, rng);
            sealed.ok().map(|sealed| Sealed::Envelope(Box::new(sealed)))
        }
    }

    /// Opens a message; a sender-key message's handoff, if it carries one, first.
    pub(super) fn open(&mut self, sealed: &Sealed, now: u64) -> Result<Opened, OpenError> {
        match sealed {
            Sealed::Envelope(envelope) => self.keyring.open(envelope, &mut self.replica, now),
            Sealed::Chain(sealed) => {
                if let Some(handoff) = &sealed.handoff {
                    match self.take_handoff(handoff, now) {
                        // A chain handed on to members whose keys changed, not this one.
                        Err(OpenError::NotAddressedToMe) | Ok(()) => {}
                        Err(e) => return Err(e),
                    }
                }
                let grace = self.keyring.config().grace_ms;
                let message = &sealed.message;
                self.keys
                    .open(&mut self.replica, POLICY, message, now, grace)
            }
        }
    }

    /// Opens a chain's handoff envelope and installs the chain.
    pub(super) fn take_handoff(&mut self, handoff: &Envelope, now: u64) -> Result<(), OpenError> {
        let opened = self.keyring.open(handoff, &mut self.replica, now)?;
        let Ok(Payload::Chain(chain)) = Payload::from_bytes(&opened.plaintext) else {
            unreachable!("simulated devices hand out chains only in handoffs");
        };
        let view = handoff.header.view;
        self.keys
            .install(&opened, view, &chain, ChainConfig::default(), now)
            .map_err(OpenError::Chain)?;
        Ok(())
    }

    /// This device's current chain and its handoff to `reader`, if it serves the current
    /// view, as the device layer's sync hands it out again.
    pub(super) fn current_handoff(&self, reader: &MemberId) -> Option<(ChainId, Envelope)> {
        let (chain, envelope) = self.keys.own_handoff(self.replica.view(), reader)?;
        Some((chain, envelope.clone()))
    }
}
