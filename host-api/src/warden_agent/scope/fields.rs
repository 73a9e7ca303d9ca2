//! Field-level minimisation: which fields of a JSON record an agent sees.
//!
//! A records grant may name the top-level fields of the JSON objects under
//! its prefix that the agent may see (`fields = ["vendor", "amount"]`). On a
//! `get`, the host parses the stored document and hands the guest an object
//! holding only those fields; the audit event names the fields withheld
//! (names only, never values). Decisions, made here once for every caller:
//!
//! - a value that is not a JSON object (not JSON at all, an array, a
//!   string) under such a grant is refused: the host cannot tell which part
//!   is safe to show, and showing it whole would defeat the grant;
//! - only read grants may name fields: a read-write grant with fields would
//!   let a `put` replace the document and silently destroy the fields the
//!   agent cannot see, so the manifest refuses that combination at load;
//! - fields are top-level names; nested objects are shown or withheld
//!   whole.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use thiserror::Error;

/// Longest field name a grant may name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 64;
/// Most fields one grant entry may name.
pub const MAX_FIELDS: usize = 64;

/// Why a field name in a grant is not valid.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FieldNameError {
    /// Empty name.
    #[error("field name is empty")]
    Empty,
    /// Longer than [`MAX_FIELD_NAME_BYTES`].
    #[error("field name is {0} bytes, over the maximum of {MAX_FIELD_NAME_BYTES}")]
    TooLong(usize),
    /// Holds a control or invisible character.
    #[error("field name contains a control or invisible character")]
    ControlCharacter,
}

/// Checks a field name a grant names.
///
/// # Errors
///
/// Returns the rule `name` breaks.
pub fn validate_field_name(name: &str) -> Result<(), FieldNameError> {
    if name.len() > MAX_FIELD_NAME_BYTES {
        return Err(FieldNameError::TooLong(name.len()));
    }
    if name.is_empty() {
        return Err(FieldNameError::Empty);
    }
    if name
        .chars()
        .any(|c| c.is_control() || crate::scope::is_hidden(c))
    {
        return Err(FieldNameError::ControlCharacter);
    }
    Ok(())
}

/// Why a stored value cannot be shown under a field grant.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProjectionError {
    /// The value is not JSON.
    #[error("value is not JSON and the grant shows only some fields of it")]
    NotJson,
    /// The value is JSON but not an object.
    #[error("value is not a JSON object and the grant shows only some fields of it")]
    NotObject,
}

/// A projected document: what the guest receives, and what it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    /// The JSON object with only the granted fields, serialized.
    pub value: Vec<u8>,
    /// Names of the fields the document had and the guest does not get, in
    /// byte order.
    pub withheld: Vec<String>,
}

/// Projects the JSON object in `value` onto `fields` (sorted).
///
/// # Errors
///
/// Returns [`ProjectionError`] when `value` is not a JSON object.
pub fn project(value: &[u8], fields: &[String]) -> Result<Projection, ProjectionError> {
    // serde_json bounds nesting depth (128), so a hostile document cannot
    // exhaust the host's stack; its size is bounded by the value limit.
    // Each shown field keeps its stored text exactly (a number is not
    // rounded through f64): only whole fields are left out. Of repeated
    // keys the last counts, as for any serde_json object.
    let object: BTreeMap<String, &RawValue> = match serde_json::from_slice(value) {
        Ok(object) => object,
        Err(_) => {
            return Err(match serde_json::from_slice::<IgnoredAny>(value) {
                Ok(_) => ProjectionError::NotObject,
                Err(_) => ProjectionError::NotJson,
            });
        }
    };
    let mut out = Vec::with_capacity(value.len());
    out.push(b'{');
    let mut withheld = Vec::new();
    for (name, field) in object {
        if fields.binary_search(&name).is_ok() {
            if out.len() > 1 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &name).map_err(|_| ProjectionError::NotJson)?;
            out.push(b':');
            out.extend_from_slice(field.get().as_bytes());
        } else {
            withheld.push(name);
        }
    }
    out.push(b'}');
    Ok(Projection {
        value: out,
        withheld,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn fields(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn only_granted_fields_are_shown_and_the_rest_named() {
        let doc = br#"{"vendor":"ACME","amount":"10.00","iban":"DE89","card_number":"4111"}"#;
        let p = project(doc, &fields(&["vendor", "amount", "currency"])).unwrap();
        let shown: Value = serde_json::from_slice(&p.value).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({"vendor": "ACME", "amount": "10.00"})
        );
        assert_eq!(p.withheld, ["card_number", "iban"]);
        let text = String::from_utf8(p.value).unwrap();
        assert!(!text.contains("DE89") && !text.contains("4111"), "{text}");
    }

    /// Found by review: a large number came out rounded through f64.
    #[test]
    fn shown_fields_keep_their_exact_text() {
        let doc = br#"{"limit":12345678901234567890123,"rate":0.10000000000000000001,"iban":"x","note":"a\u00e9\n"}"#;
        let p = project(doc, &fields(&["limit", "rate", "note"])).unwrap();
        assert_eq!(
            String::from_utf8(p.value).unwrap(),
            r#"{"limit":12345678901234567890123,"note":"a\u00e9\n","rate":0.10000000000000000001}"#
        );
        assert_eq!(p.withheld, ["iban"]);
        let p = project(br#"{"a":1,"a":2,"b":3}"#, &fields(&["a"])).unwrap();
        assert_eq!(p.value, br#"{"a":2}"#);
        let p = project(b"{}", &fields(&["a"])).unwrap();
        assert_eq!(p.value, b"{}");
    }

    #[test]
    fn anything_but_a_json_object_is_refused() {
        let f = fields(&["a"]);
        assert_eq!(project(b"not json", &f), Err(ProjectionError::NotJson));
        assert_eq!(project(b"[1,2]", &f), Err(ProjectionError::NotObject));
        assert_eq!(project(b"\"a\"", &f), Err(ProjectionError::NotObject));
        let deep = "[".repeat(10_000);
        assert_eq!(project(deep.as_bytes(), &f), Err(ProjectionError::NotJson));
    }

    #[test]
    fn field_names_are_checked() {
        assert_eq!(validate_field_name("iban"), Ok(()));
        assert_eq!(validate_field_name(""), Err(FieldNameError::Empty));
        assert_eq!(
            validate_field_name("a\u{202e}"),
            Err(FieldNameError::ControlCharacter)
        );
        assert_eq!(
            validate_field_name(&"f".repeat(65)),
            Err(FieldNameError::TooLong(65))
        );
    }
}
