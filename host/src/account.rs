//! Casper accounts as the store indexes them: whatever form an event or a client names an
//! account in (a public key, or an account hash with or without its `account-hash-` prefix),
//! its 32-byte account hash in lowercase hex. The rule is the one the plugin SDK applies too
//! (`sluice-casper`).

pub use sluice_casper::account_hash;
