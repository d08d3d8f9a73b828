//! Accounts and keys as clients name them.

use blake2::digest::{Update, VariableOutput};

/// The account hash (64 lowercase hex digits) of a public key (`01` + 32 bytes of ed25519, or
/// `02` + 33 bytes of secp256k1) or of an account hash (`account-hash-…`, or bare hex).
pub fn account_hash(account: &str) -> Result<String, String> {
    let hex_digits = account.strip_prefix("account-hash-").unwrap_or(account);
    if hex_digits.len() == 64 && hex_digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(hex_digits.to_ascii_lowercase());
    }
    let bytes = hex::decode(account).map_err(|_| not_an_account(account))?;
    // The hash is of the algorithm's name, a zero byte and the key without its tag.
    let algorithm: &[u8] = match (bytes.first(), bytes.len()) {
        (Some(1), 33) => b"ed25519",
        (Some(2), 34) => b"secp256k1",
        _ => return Err(not_an_account(account)),
    };
    let mut hasher = blake2::Blake2bVar::new(32).expect("32 is a valid length");
    hasher.update(algorithm);
    hasher.update(&[0]);
    hasher.update(&bytes[1..]);
    let mut hash = [0u8; 32];
    hasher.finalize_variable(&mut hash).expect("the length asked for");
    Ok(hex::encode(hash))
}

/// The hex of a formatted hash: `hash-…`, `account-hash-…`, `contract-package-…`,
/// `entity-contract-…` (or bare hex) → the part after the last `-`.
pub fn bare_hash(formatted: &str) -> &str {
    formatted.rsplit('-').next().unwrap_or(formatted)
}

/// The formatted `Key` of something that can hold tokens, as CES events name it: an account (a
/// public key or an account hash, bare or `account-hash-…`) → `account-hash-…`; a contract
/// (`hash-…`) → itself; lowercase.
pub fn holder_key(text: &str) -> Result<String, String> {
    match text.strip_prefix("hash-") {
        Some(hash) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(text.to_ascii_lowercase()),
        _ => account_hash(text).map(|hash| format!("account-hash-{hash}")),
    }
}

fn not_an_account(account: &str) -> String {
    format!(
        "{account:?} is neither a public key nor an account hash (a public key is 01 + 32 bytes or 02 + 33 bytes, \
         an account hash 32 bytes, in hex)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_and_account_hashes_name_the_same_account() {
        // The voting fixture's deployer and the `creator` its contract recorded for it.
        let key = "0184f6d260f4ee6869ddb36affe15456de6ae045278fa2f467bb677561ce0dad55";
        let hash = account_hash(key).expect("a public key");
        assert_eq!(hash, "56befc13a6fd62e18f361700a5e08f966901c34df8041b36ec97d54d605c23de");
        assert_eq!(account_hash(&format!("account-hash-{hash}")), Ok(hash.clone()));
        assert_eq!(account_hash(&hash.to_uppercase()), Ok(hash));
        assert!(account_hash("03ab").is_err());
        assert!(account_hash("account-hash-xyz").is_err());
        assert!(account_hash("account-hash-").is_err());
    }

    #[test]
    fn holders_are_formatted_keys() {
        let hash = "56befc13a6fd62e18f361700a5e08f966901c34df8041b36ec97d54d605c23de";
        let account = format!("account-hash-{hash}");
        assert_eq!(
            holder_key("0184f6d260f4ee6869ddb36affe15456de6ae045278fa2f467bb677561ce0dad55"),
            Ok(account.clone())
        );
        assert_eq!(holder_key(&hash.to_uppercase()), Ok(account.clone()));
        assert!(holder_key(&format!("HASH-{hash}")).is_err(), "the prefix is lowercase");
        assert_eq!(holder_key(&format!("hash-{}", hash.to_uppercase())), Ok(format!("hash-{hash}")));
        assert!(holder_key("hash-12").is_err());
        assert_eq!(bare_hash(&account), hash);
        assert_eq!(bare_hash(hash), hash);
    }
}
