use std::fmt;

use serde::{de, Deserialize, Deserializer};

/// Parses an id as the API writes it in a path, a query or a JWT `sub`: ASCII digits only (no
/// sign, no spaces), no leading zero, between 1 and `i64::MAX`. One spelling per id: `+7`,
/// ` 7`, `07` and `7.0` are refused rather than taken for 7.
pub fn parse_id(text: &str) -> Result<i64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not an id: ids are positive integers written in digits only"));
    }
    if text.starts_with('0') {
        return Err(format!("{text:?} is not an id: ids are at least 1 and have no leading zeros"));
    }
    text.parse::<i64>().map_err(|_| format!("{text:?} is not an id: too large for a 64-bit integer"))
}

/// Checks an id that arrived as a number (a JSON body): at least 1.
pub fn check_id(what: &str, id: i64) -> Result<i64, String> {
    if id >= 1 {
        Ok(id)
    } else {
        Err(format!("{what} {id} is not a valid id: ids are positive integers (at least 1)"))
    }
}

/// An id in a path or query parameter, parsed by [`parse_id`]: anything else is a `400`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub i64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive integer id (digits only)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Id, E> {
                parse_id(text).map(Id).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Id, E> {
                check_id("id", value).map(Id).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Id, E> {
                i64::try_from(value).map_err(|_| E::custom("id too large")).and_then(|v| self.visit_i64(v))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_and_written_in_digits_only() {
        assert_eq!(parse_id("1"), Ok(1));
        assert_eq!(parse_id("42"), Ok(42));
        assert_eq!(parse_id("9223372036854775807"), Ok(i64::MAX));
        for bad in [
            "",
            "0",
            "00",
            "042",
            "+42",
            "-42",
            " 42",
            "42 ",
            "4 2",
            "42.0",
            "4e2",
            "0x2a",
            "٤٢",
            "abc",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            assert!(parse_id(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn numeric_ids_must_be_at_least_one() {
        assert_eq!(check_id("organizationID", 7), Ok(7));
        assert!(check_id("organizationID", 0).unwrap_err().contains("organizationID 0"));
        assert!(check_id("organizationID", -3).is_err());
    }

    #[test]
    fn ids_deserialize_from_text_and_refuse_other_spellings() {
        let parsed: Vec<(String, Id)> = serde_urlencoded::from_str("a=5").unwrap();
        assert_eq!(parsed, vec![("a".to_owned(), Id(5))]);
        assert!(serde_urlencoded::from_str::<Vec<(String, Id)>>("a=%2B5").is_err());
        assert!(serde_urlencoded::from_str::<Vec<(String, Id)>>("a=0").is_err());
        assert!(serde_urlencoded::from_str::<Vec<(String, Id)>>("a=").is_err());
    }
}
