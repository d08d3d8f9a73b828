//! The mock node's generated chain, built with casper-types so that what the official SDKs check
//! verifies: transaction and deploy hashes (and deploys' body hashes) match their contents,
//! approvals and finality signatures are real Ed25519 signatures by the keys they name, and
//! block hashes and body hashes match, each block naming its parent.
//!
//! Block `b` is a pure function of `b`: its transactions and signatures are generated from
//! fixed keys, and its parent hash comes from a record of every block hash so far (computing it
//! needs no signature). Whole blocks are generated once and kept for a while, since streams read
//! them event by event.

use casper_types::bytesrepr::{Bytes, ToBytes};
use casper_types::{
    Approval, BlockHash, BlockV1, BlockV2, ChainNameDigest, Deploy, DeployHash, DeployHeader, Digest, EraId,
    ExecutableDeployItem, InitiatorAddr, PricingMode, ProtocolVersion, PublicKey, RewardedSignatures, RuntimeArgs,
    SecretKey, TimeDiff, Timestamp, Transaction, TransactionArgs, TransactionEntryPoint, TransactionHash,
    TransactionScheduling, TransactionTarget, TransactionV1, TransactionV1Hash, TransactionV1Payload, U512,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

/// The chain the generated events belong to.
pub const CHAIN_NAME: &str = "casper-net-1";
/// Height of the first generated block (above every fixture's).
pub const FIRST_HEIGHT: u64 = 1_000_000;
/// Era of the first generated block; a new era every [`BLOCKS_PER_ERA`] blocks.
const FIRST_ERA: u64 = 1000;
const BLOCKS_PER_ERA: u64 = 1000;
/// Accounts that send transactions, and validators that propose and sign blocks.
const ACCOUNTS: usize = 16;
const VALIDATORS: usize = 100;
/// Time between blocks, and the first block's time (2025-01-01T00:00:00Z).
const BLOCK_TIME_MS: u64 = 8000;
const FIRST_BLOCK_MS: u64 = 1_735_689_600_000;
/// Transactions live for 30 minutes (a single unit: what every SDK parses).
const TTL_SECS: u32 = 30 * 60;

/// Which node version's shapes the chain takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 2.x: `TransactionV1` native transfers, `BlockV2`, `FinalitySignatureV2`.
    V2,
    /// 1.x: deploys (transfers), `BlockV1` with proofs, `FinalitySignatureV1`.
    V1,
}

/// One generated transaction.
pub struct GeneratedTransaction {
    /// Its hash, hex.
    pub hash: String,
    /// Its `TransactionAccepted` (2.x) or `DeployAccepted` (1.x) event.
    pub accepted: String,
    /// The sender's public key, hex.
    pub initiator: String,
    /// When it was made, as the node writes it.
    pub timestamp: String,
}

/// One generated block and what goes with it.
pub struct GeneratedBlock {
    /// Its hash, hex.
    pub hash: String,
    /// Its `BlockAdded` event.
    pub block_added: String,
    /// The transactions it lists, in order.
    pub transactions: Vec<GeneratedTransaction>,
    /// Its `FinalitySignature` events.
    pub signatures: Vec<String>,
    /// The same signatures as `chain_get_block`'s proofs: `[{"public_key", "signature"}]`.
    pub proofs: Value,
}

/// A deterministic chain of blocks of a fixed size.
pub struct Generator {
    shape: Shape,
    transactions_per_block: u64,
    signatures_per_block: u64,
    /// Each block's hash and accumulated seed, from the first: block `b`'s parent is `b - 1`'s.
    links: Mutex<Vec<(BlockHash, Digest)>>,
    /// Recently generated blocks.
    recent: Mutex<Recent>,
    capacity: usize,
}

#[derive(Default)]
struct Recent {
    blocks: HashMap<u64, Arc<GeneratedBlock>>,
    order: VecDeque<u64>,
}

/// A key pair, its public half computed once (deriving it costs as much as a signature).
struct Keys {
    secret: SecretKey,
    public: PublicKey,
}

fn keys(role: &str, count: usize) -> Vec<Keys> {
    (0..count)
        .map(|i| {
            let seed = Digest::hash(format!("sluice mock {role} {i}"));
            let secret = SecretKey::ed25519_from_bytes(seed.value()).expect("any 32 bytes are an Ed25519 key");
            Keys { public: PublicKey::from(&secret), secret }
        })
        .collect()
}

fn accounts() -> &'static [Keys] {
    static KEYS: OnceLock<Vec<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| keys("account", ACCOUNTS))
}

fn validators() -> &'static [Keys] {
    static KEYS: OnceLock<Vec<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| keys("validator", VALIDATORS))
}

/// Serialized with casper-types' bytesrepr (infallible for these types).
fn bytes(value: &impl ToBytes) -> Bytes {
    value.to_bytes().expect("bytesrepr of a well-formed value").into()
}

impl Generator {
    /// A chain of `shape` with these many transactions and finality signatures per block,
    /// keeping up to `capacity` generated blocks.
    pub fn new(shape: Shape, transactions_per_block: u64, signatures_per_block: u64, capacity: usize) -> Generator {
        assert!(signatures_per_block as usize <= VALIDATORS, "at most {VALIDATORS} signatures a block");
        Generator {
            shape,
            transactions_per_block,
            signatures_per_block,
            links: Mutex::default(),
            recent: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// Block `b` (from 0) and its transactions and signatures.
    pub fn block(&self, b: u64) -> Arc<GeneratedBlock> {
        if let Some(block) = self.recent.lock().expect("generator lock").blocks.get(&b) {
            return block.clone();
        }
        let (parent_hash, parent_seed) = match b {
            0 => (BlockHash::new(Digest::hash("sluice mock genesis")), Digest::hash("sluice mock seed")),
            _ => self.link(b - 1),
        };
        let block = Arc::new(self.generate(b, parent_hash, parent_seed));
        let mut recent = self.recent.lock().expect("generator lock");
        if recent.blocks.insert(b, block.clone()).is_none() {
            recent.order.push_back(b);
        }
        while recent.order.len() > self.capacity {
            if let Some(oldest) = recent.order.pop_front() {
                recent.blocks.remove(&oldest);
            }
        }
        block
    }

    /// Block `b`'s hash and accumulated seed, from the record (extended as far as needed: a
    /// block's hash needs its transactions' hashes, not their signatures).
    fn link(&self, b: u64) -> (BlockHash, Digest) {
        let mut links = self.links.lock().expect("generator lock");
        while links.len() as u64 <= b {
            let next = links.len() as u64;
            let (parent_hash, parent_seed) = match links.last() {
                Some(link) => *link,
                None => (BlockHash::new(Digest::hash("sluice mock genesis")), Digest::hash("sluice mock seed")),
            };
            let hashes: Vec<TransactionHash> = (0..self.transactions_per_block)
                .map(|k| match self.shape {
                    Shape::V2 => TransactionHash::from(*self.transaction_v1(next, k).hash()),
                    Shape::V1 => TransactionHash::from(*self.deploy(next, k).hash()),
                })
                .collect();
            let link = match self.shape {
                Shape::V2 => {
                    let block = self.block_v2(next, parent_hash, parent_seed, &hashes);
                    (*block.hash(), *block.header().accumulated_seed())
                }
                Shape::V1 => {
                    let block = self.block_v1(next, parent_hash, parent_seed, &hashes);
                    (*block.hash(), *block.header().accumulated_seed())
                }
            };
            links.push(link);
        }
        links[b as usize]
    }

    fn generate(&self, b: u64, parent_hash: BlockHash, parent_seed: Digest) -> GeneratedBlock {
        let transactions: Vec<(TransactionHash, GeneratedTransaction)> =
            (0..self.transactions_per_block).map(|k| self.signed_transaction(b, k)).collect();
        let hashes: Vec<TransactionHash> = transactions.iter().map(|(hash, _)| *hash).collect();
        let (block_hash, block_added) = match self.shape {
            Shape::V2 => {
                let block = self.block_v2(b, parent_hash, parent_seed, &hashes);
                let block_hash = *block.hash();
                let block = casper_types::Block::V2(block);
                (block_hash, json!({"BlockAdded": {"block_hash": block_hash, "block": block}}))
            }
            Shape::V1 => {
                let block = self.block_v1(b, parent_hash, parent_seed, &hashes);
                let block_hash = *block.hash();
                // A 1.x node streams the block bare, with its proofs.
                let mut block = serde_json::to_value(&block).expect("a block serializes");
                block["proofs"] = json!([]);
                (block_hash, json!({"BlockAdded": {"block_hash": block_hash, "block": block}}))
            }
        };
        let signed: Vec<Value> = (0..self.signatures_per_block).map(|v| self.signature(b, block_hash, v)).collect();
        let proofs = signed
            .iter()
            .map(|event| {
                let signature = event["FinalitySignature"].get("V2").unwrap_or(&event["FinalitySignature"]);
                json!({"public_key": signature["public_key"], "signature": signature["signature"]})
            })
            .collect();
        let signatures = signed.iter().map(Value::to_string).collect();
        GeneratedBlock {
            hash: hex::encode(block_hash.inner().value()),
            block_added: block_added.to_string(),
            transactions: transactions.into_iter().map(|(_, transaction)| transaction).collect(),
            signatures,
            proofs,
        }
    }

    fn sender(b: u64, k: u64) -> usize {
        ((b * 31 + k) % ACCOUNTS as u64) as usize
    }

    fn made_at(&self, b: u64, k: u64) -> Timestamp {
        Timestamp::from(FIRST_BLOCK_MS + b * BLOCK_TIME_MS - (self.transactions_per_block - k) * 100)
    }

    /// The amount and transfer id of transaction `k` of block `b`.
    fn transfer(b: u64, k: u64) -> (U512, u64) {
        let id = b * 1024 + k;
        (U512::from(2_500_000_000u64 + id), id)
    }

    /// Transaction `k` of block `b` (2.x), unsigned: a native transfer to the next account.
    fn transaction_v1(&self, b: u64, k: u64) -> TransactionV1 {
        let sender = Self::sender(b, k);
        let (amount, _) = Self::transfer(b, k);
        let mut args = RuntimeArgs::new();
        args.insert("target", accounts()[(sender + 1) % ACCOUNTS].public.clone()).expect("a CLValue");
        args.insert("amount", amount).expect("a CLValue");
        let fields = BTreeMap::from([
            (0, bytes(&TransactionArgs::Named(args))),
            (1, bytes(&TransactionTarget::Native)),
            (2, bytes(&TransactionEntryPoint::Transfer)),
            (3, bytes(&TransactionScheduling::Standard)),
        ]);
        let payload = TransactionV1Payload::new(
            CHAIN_NAME.into(),
            self.made_at(b, k),
            TimeDiff::from_seconds(TTL_SECS),
            PricingMode::Fixed { additional_computation_factor: 0, gas_price_tolerance: 1 },
            InitiatorAddr::PublicKey(accounts()[sender].public.clone()),
            fields,
        );
        let hash = TransactionV1Hash::new(Digest::hash(bytes(&payload)));
        TransactionV1::new(hash, payload, BTreeSet::new())
    }

    /// Deploy `k` of block `b` (1.x), unsigned: a transfer to the next account.
    fn deploy(&self, b: u64, k: u64) -> Deploy {
        let sender = Self::sender(b, k);
        let (amount, id) = Self::transfer(b, k);
        let mut payment_args = RuntimeArgs::new();
        payment_args.insert("amount", U512::from(100_000_000u64)).expect("a CLValue");
        let payment = ExecutableDeployItem::ModuleBytes { module_bytes: Bytes::new(), args: payment_args };
        let mut args = RuntimeArgs::new();
        args.insert("amount", amount).expect("a CLValue");
        let target = accounts()[(sender + 1) % ACCOUNTS].public.to_account_hash();
        args.insert("target", target.value()).expect("a CLValue");
        args.insert("id", Some(id)).expect("a CLValue");
        let session = ExecutableDeployItem::Transfer { args };
        let mut body = bytes(&payment).to_vec();
        body.extend_from_slice(&bytes(&session));
        let header = DeployHeader::new(
            accounts()[sender].public.clone(),
            self.made_at(b, k),
            TimeDiff::from_seconds(TTL_SECS),
            1,
            Digest::hash(body),
            Vec::new(),
            CHAIN_NAME.into(),
        );
        let hash = DeployHash::new(Digest::hash(bytes(&header)));
        Deploy::new(hash, header, payment, session)
    }

    /// Transaction `k` of block `b`, signed by its sender, as its accepted event.
    fn signed_transaction(&self, b: u64, k: u64) -> (TransactionHash, GeneratedTransaction) {
        let sender = &accounts()[Self::sender(b, k)];
        let approve = |hash: TransactionHash| {
            let signature = casper_types::crypto::sign(hash.digest(), &sender.secret, &sender.public);
            BTreeSet::from([Approval::new(sender.public.clone(), signature)])
        };
        let (hash, timestamp, accepted) = match self.shape {
            Shape::V2 => {
                let unsigned = self.transaction_v1(b, k);
                let hash = TransactionHash::from(*unsigned.hash());
                let timestamp = unsigned.timestamp();
                let transaction = Transaction::V1(unsigned.with_approvals(approve(hash)));
                (hash, timestamp, json!({"TransactionAccepted": transaction}))
            }
            Shape::V1 => {
                let unsigned = self.deploy(b, k);
                let hash = TransactionHash::from(*unsigned.hash());
                let timestamp = unsigned.header().timestamp();
                (hash, timestamp, json!({"DeployAccepted": unsigned.with_approvals(approve(hash))}))
            }
        };
        let mut accepted = accepted;
        super::parsed_args::add_to(&mut accepted);
        let transaction = GeneratedTransaction {
            hash: hex::encode(hash.digest().value()),
            accepted: accepted.to_string(),
            initiator: sender.public.to_hex_string(),
            timestamp: timestamp.to_string(),
        };
        (hash, transaction)
    }

    fn era(b: u64) -> EraId {
        EraId::new(FIRST_ERA + b / BLOCKS_PER_ERA)
    }

    fn block_v2(&self, b: u64, parent: BlockHash, parent_seed: Digest, transactions: &[TransactionHash]) -> BlockV2 {
        // Native transfers go in the mint lane, 0.
        let lanes = BTreeMap::from([(0u8, transactions.to_vec())]);
        BlockV2::new(
            parent,
            parent_seed,
            Digest::hash(format!("state {b}")),
            b % 2 == 0,
            None,
            Timestamp::from(FIRST_BLOCK_MS + b * BLOCK_TIME_MS),
            Self::era(b),
            FIRST_HEIGHT + b,
            ProtocolVersion::from_parts(2, 0, 0),
            validators()[(b % VALIDATORS as u64) as usize].public.clone(),
            lanes,
            RewardedSignatures::default(),
            1,
            None,
        )
    }

    fn block_v1(&self, b: u64, parent: BlockHash, parent_seed: Digest, transactions: &[TransactionHash]) -> BlockV1 {
        let transfers = transactions
            .iter()
            .map(|hash| match hash {
                TransactionHash::Deploy(hash) => *hash,
                TransactionHash::V1(hash) => DeployHash::new(*hash.inner()),
            })
            .collect();
        BlockV1::new(
            parent,
            parent_seed,
            Digest::hash(format!("state {b}")),
            b % 2 == 0,
            None,
            Timestamp::from(FIRST_BLOCK_MS + b * BLOCK_TIME_MS),
            Self::era(b),
            FIRST_HEIGHT + b,
            ProtocolVersion::from_parts(1, 5, 8),
            validators()[(b % VALIDATORS as u64) as usize].public.clone(),
            Vec::new(),
            transfers,
        )
    }

    /// Validator `v`'s finality signature of block `b`: 2.x signs the hash, height, era and
    /// chain name's hash; 1.x the hash and era (and streams it without a version wrapper).
    fn signature(&self, b: u64, block_hash: BlockHash, v: u64) -> Value {
        let validator = &validators()[v as usize];
        let era = Self::era(b);
        let mut signed = block_hash.inner().into_vec();
        if self.shape == Shape::V2 {
            signed.extend_from_slice(&(FIRST_HEIGHT + b).to_le_bytes());
        }
        signed.extend_from_slice(&era.to_le_bytes());
        let chain_name_hash = ChainNameDigest::from_chain_name(CHAIN_NAME);
        if self.shape == Shape::V2 {
            signed.extend_from_slice(chain_name_hash.inner().as_ref());
        }
        let signature = casper_types::crypto::sign(&signed, &validator.secret, &validator.public);
        match self.shape {
            Shape::V2 => json!({"FinalitySignature": {"V2": {
                "block_hash": block_hash, "block_height": FIRST_HEIGHT + b, "era_id": era,
                "chain_name_hash": chain_name_hash, "signature": signature, "public_key": validator.public,
            }}}),
            Shape::V1 => json!({"FinalitySignature": {
                "block_hash": block_hash, "era_id": era, "signature": signature, "public_key": validator.public,
            }}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_transactions_blocks_and_signatures_verify() {
        for shape in [Shape::V2, Shape::V1] {
            let generator = Generator::new(shape, 3, 4, 8);
            let (first, second) = (generator.block(0), generator.block(1));
            for block in [&first, &second] {
                for transaction in &block.transactions {
                    let accepted: Value = serde_json::from_str(&transaction.accepted).unwrap();
                    match shape {
                        Shape::V2 => {
                            let transaction: Transaction =
                                serde_json::from_value(strip_parsed(accepted["TransactionAccepted"].clone())).unwrap();
                            let Transaction::V1(v1) = transaction else { panic!("a V1 transaction") };
                            v1.verify().unwrap();
                        }
                        Shape::V1 => {
                            let deploy: Deploy =
                                serde_json::from_value(strip_parsed(accepted["DeployAccepted"].clone())).unwrap();
                            deploy.is_valid().unwrap();
                        }
                    }
                }
                let added: Value = serde_json::from_str(&block.block_added).unwrap();
                match shape {
                    Shape::V2 => {
                        let block: casper_types::Block =
                            serde_json::from_value(added["BlockAdded"]["block"].clone()).unwrap();
                        block.verify().unwrap();
                    }
                    Shape::V1 => {
                        let mut json = added["BlockAdded"]["block"].clone();
                        json.as_object_mut().unwrap().remove("proofs");
                        let block: BlockV1 = serde_json::from_value(json).unwrap();
                        block.verify().unwrap();
                    }
                }
                for signature in &block.signatures {
                    let signature: Value = serde_json::from_str(signature).unwrap();
                    let inner = match shape {
                        Shape::V2 => json!({"V2": signature["FinalitySignature"]["V2"]}),
                        Shape::V1 => json!({"V1": signature["FinalitySignature"]}),
                    };
                    let signature: casper_types::FinalitySignature = serde_json::from_value(inner).unwrap();
                    signature.is_verified().unwrap();
                }
            }
            let second: Value = serde_json::from_str(&second.block_added).unwrap();
            let parent = match shape {
                Shape::V2 => &second["BlockAdded"]["block"]["Version2"]["header"]["parent_hash"],
                Shape::V1 => &second["BlockAdded"]["block"]["header"]["parent_hash"],
            };
            assert_eq!(parent.as_str(), Some(first.hash.as_str()), "each block names its parent");
            // The same block again, from a fresh generator: deterministic.
            let again = Generator::new(shape, 3, 4, 8).block(1);
            assert_eq!(again.block_added, generator.block(1).block_added);
        }
    }

    /// `value` without the `parsed` fields casper-types (without its schema feature) refuses.
    fn strip_parsed(mut value: Value) -> Value {
        fn walk(value: &mut Value) {
            match value {
                Value::Object(fields) => {
                    fields.remove("parsed");
                    fields.values_mut().for_each(walk);
                }
                Value::Array(items) => items.iter_mut().for_each(walk),
                _ => {}
            }
        }
        walk(&mut value);
        value
    }
}
