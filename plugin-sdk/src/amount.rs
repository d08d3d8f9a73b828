//! Big unsigned integers (token amounts: CEP-18 balances are U256, CSPR motes U512), stored and
//! served as decimal strings as Casper's JSON writes them.
// Lints that fire inside the `uint` crate's `construct_uint!` expansion, not on code here.
#![allow(clippy::reversed_empty_ranges, clippy::manual_div_ceil)]

macro_rules! decimal_integer {
    ($(#[$doc:meta])* $name:ident, $words:tt) => {
        uint::construct_uint! {
            $(#[$doc])*
            pub struct $name($words);
        }

        /// As a decimal string.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        /// From a decimal string or a JSON number.
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                struct Decimal;
                impl serde::de::Visitor<'_> for Decimal {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        write!(f, "a {}-bit unsigned integer as a decimal string", $words * 64)
                    }
                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
                        let value = if digits { $name::from_dec_str(text).ok() } else { None };
                        value.ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &self))
                    }
                    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<$name, E> {
                        Ok($name::from(number))
                    }
                }
                deserializer.deserialize_any(Decimal)
            }
        }
    };
}

decimal_integer!(
    /// A 128-bit unsigned integer (CLType `U128`).
    U128,
    2
);
decimal_integer!(
    /// A 256-bit unsigned integer (CLType `U256`: CEP-18 amounts).
    U256,
    4
);
decimal_integer!(
    /// A 512-bit unsigned integer (CLType `U512`: motes).
    U512,
    8
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_decimal_strings() {
        let max = U256::MAX;
        let json = serde_json::to_string(&max).unwrap();
        assert_eq!(json, format!("\"{max}\""));
        assert_eq!(serde_json::from_str::<U256>(&json).unwrap(), max);
        assert_eq!(serde_json::from_str::<U512>("7").unwrap(), U512::from(7));
        assert_eq!(serde_json::from_str::<U128>("\"1000\"").unwrap() + 1, U128::from(1001));
        assert!(serde_json::from_str::<U128>("\"-1\"").is_err());
        assert!(serde_json::from_str::<U128>("\"340282366920938463463374607431768211456\"").is_err(), "2^128");
        assert!(serde_json::from_str::<U256>("1.5").is_err());
        assert!(serde_json::from_str::<U256>("\"\"").is_err() && serde_json::from_str::<U256>("\"+1\"").is_err());
        assert_eq!(U256::from(5).saturating_sub(U256::from(7)), U256::zero());
    }
}
