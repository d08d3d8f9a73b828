//! Typed views of the node JSON fields Sluice indexes; serde skips everything else without
//! building a tree.

use serde::Deserialize;
use serde::de::IgnoredAny;

/// 2.x wraps many values as `{"Version1": x}`, `{"Version2": x}` or `{"Deploy": x}`.
#[derive(Deserialize)]
pub(super) enum Versioned<T> {
    Version1(T),
    Version2(T),
    Deploy(T),
}

impl<T> Versioned<T> {
    pub(super) fn into_inner(self) -> T {
        match self {
            Versioned::Version1(t) | Versioned::Version2(t) | Versioned::Deploy(t) => t,
        }
    }
}

/// An accepted transaction: 2.x's `Version1` names its initiator in `payload`, a deploy (1.x,
/// or 2.x's `Deploy`) its account in `header`.
#[derive(Deserialize)]
pub(super) struct Accepted {
    pub(super) hash: String,
    #[serde(default)]
    pub(super) header: Option<DeployHeader>,
    #[serde(default)]
    pub(super) payload: Option<TransactionPayload>,
}

impl Accepted {
    pub(super) fn account(&self) -> Option<&str> {
        let from_header = self.header.as_ref().and_then(|h| h.account.as_deref());
        from_header.or_else(|| self.payload.as_ref()?.initiator_addr.as_ref()?.as_str())
    }
}

#[derive(Deserialize)]
pub(super) struct DeployHeader {
    #[serde(default)]
    pub(super) account: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct TransactionPayload {
    #[serde(default)]
    pub(super) initiator_addr: Option<Initiator>,
}

/// 2.x's `initiator_addr`: `{"PublicKey": …}` or `{"AccountHash": …}`; any other shape is
/// no account (the event is still stored).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Initiator {
    Known(KnownInitiator),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
pub(super) enum KnownInitiator {
    PublicKey(String),
    AccountHash(String),
}

impl Initiator {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Initiator::Known(KnownInitiator::PublicKey(key) | KnownInitiator::AccountHash(key)) => Some(key),
            Initiator::Other(_) => None,
        }
    }

    pub(super) fn into_inner(self) -> Option<String> {
        match self {
            Initiator::Known(KnownInitiator::PublicKey(key) | KnownInitiator::AccountHash(key)) => Some(key),
            Initiator::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct BlockAdded {
    pub(super) block_hash: String,
    pub(super) block: BlockAny,
}

/// 2.x: `{"Version2": {header, ...}}`; 1.x: `{header, ...}` directly.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum BlockAny {
    Versioned(Versioned<Block>),
    Legacy(Block),
    Other(IgnoredAny),
}

impl BlockAny {
    pub(super) fn header(&self) -> Option<&BlockHeader> {
        match self {
            BlockAny::Versioned(Versioned::Version1(b) | Versioned::Version2(b) | Versioned::Deploy(b))
            | BlockAny::Legacy(b) => Some(&b.header),
            BlockAny::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Block {
    pub(super) header: BlockHeader,
}

#[derive(Deserialize)]
pub(super) struct BlockHeader {
    pub(super) height: u64,
    pub(super) era_id: u64,
}

#[derive(Deserialize)]
pub(super) struct TransactionProcessed {
    pub(super) transaction_hash: Versioned<String>,
    pub(super) block_hash: String,
    #[serde(default)]
    pub(super) initiator_addr: Option<Initiator>,
}

#[derive(Deserialize)]
pub(super) struct DeployProcessed {
    pub(super) deploy_hash: String,
    pub(super) block_hash: String,
    #[serde(default)]
    pub(super) account: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct TransactionExpired {
    pub(super) transaction_hash: Versioned<String>,
}

#[derive(Deserialize)]
pub(super) struct DeployExpired {
    pub(super) deploy_hash: String,
}

/// 2.x: `{"V1"|"V2": {...}}`; 1.x: the signature directly.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum SignatureAny {
    Versioned(VersionedSignature),
    Legacy(Signature),
}

#[derive(Deserialize)]
pub(super) enum VersionedSignature {
    V1(Signature),
    V2(Signature),
}

impl SignatureAny {
    pub(super) fn into_inner(self) -> Signature {
        match self {
            SignatureAny::Versioned(VersionedSignature::V1(s) | VersionedSignature::V2(s))
            | SignatureAny::Legacy(s) => s,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Signature {
    pub(super) block_hash: String,
    #[serde(default)]
    pub(super) block_height: Option<u64>,
    pub(super) era_id: u64,
    pub(super) public_key: String,
}

#[derive(Deserialize)]
pub(super) struct Fault {
    pub(super) era_id: u64,
    pub(super) public_key: String,
}

#[derive(Deserialize)]
pub(super) struct Step {
    pub(super) era_id: u64,
}
