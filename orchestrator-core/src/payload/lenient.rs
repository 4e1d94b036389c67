//! Lenient readers for the fields every event may carry (`action`, `repository`,
//! `installation`, `sender`).
//!
//! An event outside the routed set must never be refused because one of these fields has an
//! unexpected type: each reader yields `None` for anything it does not recognise and skips it
//! without buffering (no `serde_json::Value`, no untagged enums).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Repository;

/// Drains a sequence or map the visitor does not want.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements every "not what I want" visit method of a visitor producing `Option<T>` as `None`.
macro_rules! none_for_others {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq).map(|()| None)
        }
    };
}

/// A string, or `None` for any other JSON type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct LenientStr(pub(super) Option<String>);

impl<'de> Deserialize<'de> for LenientStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Some(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| None)
            }
            none_for_others!();
        }
        d.deserialize_any(V).map(LenientStr)
    }
}

/// An object's `id` (installation) or `login` (sender), leniently.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct LenientObject {
    /// `id` when it is an integer.
    pub(super) id: Option<i64>,
    /// `login` when it is a string.
    pub(super) login: Option<String>,
}

impl<'de> Deserialize<'de> for LenientObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<LenientObject>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = LenientObject::default();
                while let Some(key) = map.next_key::<LenientKey>()? {
                    match key.0 {
                        Some("id") => out.id = map.next_value::<LenientInt>()?.0,
                        Some("login") => out.login = map.next_value::<LenientStr>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Some(out))
            }
            none_for_others!();
        }
        d.deserialize_any(V).map(Option::unwrap_or_default)
    }
}

/// `repository` with a string `full_name`, or `None`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct LenientRepository(pub(super) Option<Repository>);

impl<'de> Deserialize<'de> for LenientRepository {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Repository>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut full_name, mut default_branch) = (None, None);
                while let Some(key) = map.next_key::<LenientKey>()? {
                    match key.0 {
                        Some("full_name") => full_name = map.next_value::<LenientStr>()?.0,
                        Some("default_branch") => {
                            default_branch = map.next_value::<LenientStr>()?.0
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(full_name.map(|full_name| Repository {
                    full_name,
                    default_branch,
                }))
            }
            none_for_others!();
        }
        d.deserialize_any(V).map(LenientRepository)
    }
}

/// An integer, or `None` for any other JSON type (including integers outside `i64`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct LenientInt(pub(super) Option<i64>);

impl<'de> Deserialize<'de> for LenientInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).ok())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| None)
            }
            none_for_others!();
        }
        d.deserialize_any(V).map(LenientInt)
    }
}

/// A map key, borrowed when possible (keys are strings in JSON; `None` never happens there).
struct LenientKey(Option<&'static str>);

impl<'de> Deserialize<'de> for LenientKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LenientKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                // Only the few keys we look for are kept; everything else is `None`.
                Ok(LenientKey(match v {
                    "id" => Some("id"),
                    "login" => Some("login"),
                    "full_name" => Some("full_name"),
                    "default_branch" => Some("default_branch"),
                    _ => None,
                }))
            }
        }
        d.deserialize_identifier(V)
    }
}
