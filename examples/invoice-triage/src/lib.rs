//! Example agent: triage one invoice against the tenant's vendor records.
//!
//! The agent takes one invoice as JSON, checks it, looks up the vendor,
//! decides `approve`, `hold` or `reject` with a reason a person can read,
//! stores the result and records the decision in the audit trail. It shows:
//!
//! - reading and writing records under two different grants, one read-only;
//! - recording a decision next to the calls that led to it;
//! - handling a refused call: a grant that lacks a prefix turns into an
//!   ordinary [`Error::Failed`] naming the key, never a panic;
//! - keeping the decision logic in a module with no SDK calls
//!   (`triage.rs`), so that it is unit tested on the host.
//!
//! # Rules
//!
//! The first rule that matches decides:
//!
//! 1. the vendor has no record under `vendors/<vendor_id>`: reject;
//! 2. the vendor's status is `blocked`: reject;
//! 3. a line's amount is not its quantity × unit price, rounded half away
//!    from zero to cents: reject;
//! 4. the line amounts do not add up to the invoice total: reject;
//! 5. `triage/<invoice_id>` already exists: hold, as a duplicate of an
//!    invoice already triaged; the earlier result is kept, not overwritten;
//! 6. the invoice currency is not the vendor's currency: hold;
//! 7. the total is above the vendor's `approval_limit`: hold;
//! 8. otherwise: approve.
//!
//! An input that is not valid JSON, lacks a required field (`invoice_id`,
//! `vendor_id`, `currency`, `total`, `lines` and, per line, `quantity`,
//! `unit_price` and `amount`), has an id that is not one key segment or an
//! amount that is not a plain decimal such as `"1234.50"` fails with
//! [`Error::InvalidInput`]. Other fields, such as `po_number`, dates and
//! descriptions, are optional and ignored.
//!
//! # Input and output
//!
//! ```json
//! {"invoice_id": "INV-1001", "vendor_id": "ACME-001", "currency": "EUR",
//!  "lines": [{"description": "Delivery", "quantity": "1",
//!             "unit_price": "29.00", "amount": "29.00"}],
//!  "total": "29.00"}
//! ```
//!
//! The output, also stored under `triage/<invoice_id>`:
//!
//! ```json
//! {"invoice_id": "INV-1001", "vendor_id": "ACME-001", "decision": "approve",
//!  "reason": "vendor ... is active, ...", "total": "29.00", "currency": "EUR"}
//! ```
//!
//! # Capabilities and grant
//!
//! - `records`: `get` under `vendors/`, seeing only the fields it decides
//!   on (not the vendor's `iban` or `country`); `get` and `put` under
//!   `triage/`;
//! - `decisions`: one `record` per invocation; needs no grant.
//!
//! The smallest grant that runs it, as in `agent.toml`:
//!
//! ```toml
//! [[grants.records]]
//! prefix = "vendors/"
//! access = "read"
//! fields = ["id", "name", "currency", "status", "approval_limit"]
//!
//! [[grants.records]]
//! prefix = "triage/"
//! access = "read-write"
//! ```
//!
//! The vendor records are written by the `vendor-sync` example, which holds
//! the only write grant on `vendors/`.

mod triage;

use crate::triage::{TriageResult, decide, parse_invoice, parse_vendor};
use warden_guest_sdk::{Agent, Error, decisions, records};

/// The agent. Public so that the host build, which exists for the unit
/// tests, sees it used; on wasm32 it is also the component's export.
#[derive(Debug)]
pub struct InvoiceTriage;

impl Agent for InvoiceTriage {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let invoice = parse_invoice(&input).map_err(|e| Error::InvalidInput(e.to_string()))?;

        let vendor_key = format!("vendors/{}", invoice.vendor_id);
        let vendor = match records::get(&vendor_key) {
            Ok(bytes) => Some(parse_vendor(&bytes).map_err(|e| {
                Error::Failed(format!("vendor record {vendor_key} is unreadable: {e}"))
            })?),
            Err(records::Error::NotFound) => None,
            Err(e) => return Err(records_failure("read", &vendor_key, e)),
        };

        // Only whether the key exists matters here, not what the earlier
        // result said: the same invoice id twice is suspicious either way.
        let triage_key = format!("triage/{}", invoice.invoice_id);
        let already_triaged = match records::get(&triage_key) {
            Ok(_) => true,
            Err(records::Error::NotFound) => false,
            Err(e) => return Err(records_failure("read", &triage_key, e)),
        };

        let decision = decide(&invoice, vendor.as_ref(), already_triaged);
        let result = serde_json::to_vec(&TriageResult::new(&invoice, &decision))
            .map_err(|e| Error::Failed(format!("cannot encode the triage result: {e}")))?;

        // A duplicate must not overwrite the first result: someone may
        // already have paid on it, and replacing "approve" with "hold" would
        // hide that the invoice was approved once.
        if !already_triaged {
            records::put(&triage_key, &result)
                .map_err(|e| records_failure("write", &triage_key, e))?;
        }

        let subject = format!("invoice {}", invoice.invoice_id);
        decisions::record(&subject, decision.outcome.as_str(), &decision.reason)
            .map_err(|e| decision_failure(&subject, e))?;

        Ok(result)
    }
}

warden_guest_sdk::export_agent!(InvoiceTriage);

/// Turns a records error into the agent's error, naming the key.
///
/// A refusal is the manifest's doing, not the invoice's, so it is `Failed`
/// rather than `InvalidInput`: the same invoice succeeds once the grant is
/// fixed.
fn records_failure(action: &str, key: &str, error: records::Error) -> Error {
    Error::Failed(match error {
        records::Error::NotPermitted(why) => {
            format!("cannot {action} {key}: not permitted ({why}); check the grants in agent.toml")
        }
        records::Error::NotFound => format!("cannot {action} {key}: no such record"),
        records::Error::LimitReached(which) => format!("cannot {action} {key}: {which}"),
        records::Error::InvalidKey(rule) => format!("cannot {action} {key}: {rule}"),
        records::Error::Other(text) => format!("cannot {action} {key}: {text}"),
    })
}

/// Turns a decisions error into the agent's error, naming the subject.
fn decision_failure(subject: &str, error: decisions::Error) -> Error {
    let why = match error {
        decisions::Error::NotPermitted(why)
        | decisions::Error::LimitReached(why)
        | decisions::Error::Other(why) => why,
    };
    Error::Failed(format!("cannot record the decision on {subject}: {why}"))
}
