//! Checking a vendor list, apart from the host.
//!
//! The whole list is checked before the first record is written, so a list
//! with one bad entry changes nothing. Nothing here calls the guest SDK, so
//! every check runs in host unit tests.

use std::{collections::HashMap, fmt};

use serde::{Deserialize, Serialize};

/// Most vendors one invocation loads. Each vendor costs one recorded
/// decision, and the host allows 100 decisions per invocation by default
/// (`decisions` WIT docs); refusing a longer list up front is better than
/// failing halfway through it.
pub(crate) const MAX_VENDORS: usize = 100;

/// Longest vendor id accepted, in bytes.
const MAX_ID_BYTES: usize = 64;

/// Longest vendor name accepted, in bytes. Names end up in decision reasons,
/// which the host caps at 4 KiB.
const MAX_NAME_BYTES: usize = 200;

/// Integer digits accepted in an approval limit; the same bound the
/// invoice-triage agent reads amounts with.
const MAX_INTEGER_DIGITS: usize = 12;

/// One vendor, as read from the list and as stored under `vendors/<id>`.
///
/// Unknown fields are refused rather than dropped: the record is written
/// from this type, so a misspelt field would silently vanish from it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Vendor {
    /// Record key segment: ASCII letters, digits, `-` and `_`.
    pub(crate) id: String,
    /// Legal name, shown in the reasons other agents give.
    pub(crate) name: String,
    /// ISO 3166-1 alpha-2 country code, such as `DE`.
    pub(crate) country: String,
    /// ISO 4217 code of the currency the vendor is paid in, such as `EUR`.
    pub(crate) currency: String,
    /// Whether the vendor may be paid.
    pub(crate) status: Status,
    /// Highest invoice total approved without a person, in `currency`, as
    /// a decimal string such as `"5000.00"`.
    pub(crate) approval_limit: String,
    /// The account the vendor is paid to, as an IBAN without spaces; when
    /// present. Payment data: an agent that does not pay vendors should be
    /// granted the other fields only (see invoice-triage's manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) iban: Option<String>,
}

/// Whether a vendor may be paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// May be paid.
    Active,
    /// Must not be paid.
    Blocked,
}

impl Status {
    /// The status as written in the list.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Blocked => "blocked",
        }
    }
}

/// Why a vendor list is refused; one phrase naming the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InvalidVendors(String);

impl fmt::Display for InvalidVendors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a JSON array of vendors and checks every entry.
///
/// # Errors
///
/// Returns [`InvalidVendors`] for input that is not a JSON array, a list
/// longer than [`MAX_VENDORS`], or the first entry that has a missing or
/// unknown field, an id that is not one key segment, a bad country, currency
/// or approval limit, or the id of an earlier entry. Entries are named by
/// their index in the array, `vendors[0]` being the first.
pub(crate) fn parse_vendors(input: &[u8]) -> Result<Vec<Vendor>, InvalidVendors> {
    // Parsing into values first lets each entry's error name its index;
    // serde_json's own message for a Vec would only give a line and column.
    let values: Vec<serde_json::Value> = serde_json::from_slice(input).map_err(|e| {
        if e.is_data() {
            InvalidVendors(format!("vendor list is not a JSON array: {e}"))
        } else {
            InvalidVendors(format!("vendor list is not valid JSON: {e}"))
        }
    })?;
    if values.len() > MAX_VENDORS {
        return Err(InvalidVendors(format!(
            "vendor list has {} vendors, more than the {MAX_VENDORS} one run can load; split it",
            values.len()
        )));
    }

    let mut vendors = Vec::with_capacity(values.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, value) in values.into_iter().enumerate() {
        let vendor: Vendor = serde_json::from_value(value).map_err(|e| {
            InvalidVendors(format!(
                "vendors[{i}] does not have the expected fields: {e}"
            ))
        })?;
        check_vendor(&vendor).map_err(|why| InvalidVendors(format!("vendors[{i}] {why}")))?;
        if let Some(first) = seen.insert(vendor.id.clone(), i) {
            return Err(InvalidVendors(format!(
                "vendors[{i}] repeats the id {} of vendors[{first}]",
                vendor.id
            )));
        }
        vendors.push(vendor);
    }
    Ok(vendors)
}

/// Checks one entry; the error completes the phrase `vendors[i] ...`.
fn check_vendor(vendor: &Vendor) -> Result<(), String> {
    // The id becomes the key `vendors/<id>`. A `/` would write some other
    // record under the prefix (`vendors/ACME/notes`), and `.`, `..`, control
    // characters and non-NFC text break the host's key rules; allowing only
    // ASCII letters, digits, `-` and `_` rules all of them out at once.
    let id_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if vendor.id.is_empty() || vendor.id.len() > MAX_ID_BYTES || !vendor.id.chars().all(id_char) {
        return Err(format!(
            "has an unusable id {:?}; use 1 to {MAX_ID_BYTES} letters, digits, '-' or '_'",
            vendor.id
        ));
    }

    let id = &vendor.id;
    let name = vendor.name.trim();
    if name.is_empty() || vendor.name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "({id}) needs a name of 1 to {MAX_NAME_BYTES} bytes"
        ));
    }
    if vendor.name.chars().any(char::is_control) {
        return Err(format!("({id}) has a control character in its name"));
    }
    if !is_upper_code(&vendor.country, 2) {
        return Err(format!(
            "({id}) country {:?} is not a two-letter ISO 3166 code such as DE",
            vendor.country
        ));
    }
    if !is_upper_code(&vendor.currency, 3) {
        return Err(format!(
            "({id}) currency {:?} is not a three-letter ISO 4217 code such as EUR",
            vendor.currency
        ));
    }
    if let Some(iban) = &vendor.iban
        && !is_iban(iban)
    {
        return Err(format!(
            "({id}) iban {iban:?} is not an IBAN; write 15 to 34 letters and digits without \
             spaces, starting with the country code"
        ));
    }
    if !is_amount(&vendor.approval_limit) {
        return Err(format!(
            "({id}) approval_limit {:?} is not an amount; write it like \"5000.00\"",
            vendor.approval_limit
        ));
    }
    Ok(())
}

/// The shape of an IBAN: a two-letter country code, two check digits, then
/// up to 30 letters and digits. The checksum is the bank's business.
fn is_iban(text: &str) -> bool {
    let b = text.as_bytes();
    (15..=34).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_upper_code(code: &str, len: usize) -> bool {
    code.len() == len && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// A non-negative decimal with at most two fraction digits, such as
/// `5000.00` or `750`: what invoice-triage reads as an approval limit.
fn is_amount(text: &str) -> bool {
    let (integer, fraction) = match text.split_once('.') {
        Some((integer, fraction)) if !fraction.is_empty() => (integer, fraction),
        Some(_) => return false,
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !integer.is_empty()
        && integer.len() <= MAX_INTEGER_DIGITS
        && digits(integer)
        && fraction.len() <= 2
        && digits(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: &str = r#"{"id":"ACME-001","name":"Acme Industrial Supplies GmbH","country":"DE",
        "currency":"EUR","status":"active","approval_limit":"5000.00"}"#;

    /// A one-vendor list with `from` replaced by `to` in the vendor.
    fn acme_with(from: &str, to: &str) -> String {
        assert!(ACME.contains(from), "{from:?} is not in the test vendor");
        format!("[{}]", ACME.replacen(from, to, 1))
    }

    #[test]
    fn valid_lists_load_every_vendor() {
        let vendors = parse_vendors(include_bytes!("../../invoice-triage/data/vendors.json"));
        let vendors = vendors.unwrap();
        assert_eq!(vendors.len(), 9);
        assert!(vendors.iter().any(|v| v.status == Status::Blocked));

        assert_eq!(parse_vendors(b"[]").unwrap(), Vec::new());
        let limits = ["0", "750", "5000.5", "5000.00", "999999999999.99"];
        for limit in limits {
            let list = acme_with("5000.00", limit);
            assert!(parse_vendors(list.as_bytes()).is_ok(), "{limit:?}");
        }
    }

    /// A one-vendor list whose vendor has `iban`.
    fn with_iban(iban: &str) -> String {
        acme_with(r#""status""#, &format!(r#""iban":"{iban}","status""#))
    }

    #[test]
    fn an_iban_is_optional_and_kept_when_given() {
        let vendors = parse_vendors(with_iban("DE89370400440532013000").as_bytes()).unwrap();
        assert_eq!(vendors[0].iban.as_deref(), Some("DE89370400440532013000"));
        let stored = serde_json::to_string(&vendors[0]).unwrap();
        assert!(
            stored.contains(r#""iban":"DE89370400440532013000""#),
            "{stored}"
        );
        let without = parse_vendors(format!("[{ACME}]").as_bytes()).unwrap();
        assert!(!serde_json::to_string(&without[0]).unwrap().contains("iban"));
    }

    #[test]
    fn a_stored_vendor_round_trips_unchanged() {
        let vendors = parse_vendors(format!("[{ACME}]").as_bytes()).unwrap();
        let stored = serde_json::to_string(&vendors[0]).unwrap();
        let again: Vendor = serde_json::from_str(&stored).unwrap();
        assert_eq!(again, vendors[0]);
        assert!(stored.contains(r#""status":"active""#), "{stored}");
    }

    #[test]
    fn bad_entries_are_refused_naming_their_index() {
        let two = format!("[{ACME}, {}]", ACME.replace("ACME-001", "BETA-002"));
        let repeated = format!("[{ACME}, {ACME}]");
        let too_many = format!("[{}]", vec!["{}"; MAX_VENDORS + 1].join(","));

        // (case, input, words in the error)
        #[rustfmt::skip]
        let cases = [
            ("truncated", "[{\"id\":".to_owned(), "vendor list is not valid JSON"),
            ("an object, not a list", ACME.to_owned(), "vendor list is not a JSON array"),
            ("too many", too_many, "more than the 100 one run can load"),
            ("missing field", acme_with(r#""country":"DE","#, ""), "vendors[0] does not have"),
            ("unknown field", acme_with(r#""country""#, r#""x":1,"country""#), "unknown field `x`"),
            ("unknown status", acme_with("active", "suspended"), "unknown variant `suspended`"),
            ("slash in id", acme_with("ACME-001", "ACME/001"), r#"unusable id "ACME/001""#),
            ("dot in id", acme_with("ACME-001", "ACME.001"), "vendors[0] has an unusable id"),
            ("dot-dot id", acme_with("ACME-001", ".."), "vendors[0] has an unusable id"),
            ("empty id", acme_with("ACME-001", ""), r#"vendors[0] has an unusable id """#),
            ("control char in id", acme_with("ACME-001", "ACME\\u0000"), "unusable id"),
            ("non-ASCII id", acme_with("ACME-001", "MÜLLER-1"), "unusable id"),
            ("long id", acme_with("ACME-001", &"A".repeat(65)), "unusable id"),
            ("blank name", acme_with("Acme Industrial Supplies GmbH", "  "), "needs a name"),
            ("tab in name", acme_with("Supplies GmbH", "Supplies\\tGmbH"), "control character"),
            ("country name", acme_with(r#""DE""#, r#""Germany""#), "(ACME-001) country"),
            ("lower-case currency", acme_with("EUR", "eur"), "currency \"eur\""),
            ("decimal comma", acme_with("5000.00", "5.000,00"), "approval_limit \"5.000,00\""),
            ("negative limit", acme_with("5000.00", "-1.00"), "approval_limit"),
            ("three places", acme_with("5000.00", "5000.001"), "approval_limit"),
            ("limit as number", acme_with(r#""5000.00""#, "5000"), "vendors[0] does not have"),
            ("second entry bad", two.replace("BETA-002", "BETA/002"), "vendors[1] has an unusable"),
            ("repeated id", repeated, "vendors[1] repeats the id ACME-001 of vendors[0]"),
            ("iban with spaces", with_iban("DE89 3704 0044 0532 0130 00"), "is not an IBAN"),
            ("short iban", with_iban("DE8937"), "(ACME-001) iban \"DE8937\" is not an IBAN"),
            ("lower-case iban", with_iban("de89370400440532013000"), "is not an IBAN"),
        ];
        for (case, input, words) in cases {
            let err = parse_vendors(input.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(words), "{case}: {err:?} lacks {words:?}");
        }
    }
}
