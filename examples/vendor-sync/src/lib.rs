//! Example agent: load the tenant's vendor list into its vendor records.
//!
//! The input is a JSON array of vendors, as in
//! `examples/invoice-triage/data/vendors.json`:
//!
//! ```json
//! [{"id": "ACME-001", "name": "Acme Industrial Supplies GmbH",
//!   "country": "DE", "currency": "EUR", "status": "active",
//!   "approval_limit": "5000.00"}]
//! ```
//!
//! The agent checks every vendor, then writes each one as JSON under
//! `vendors/<id>`, replacing any earlier record, and records one `loaded`
//! decision per vendor. It returns `{"loaded": N}`. The `invoice-triage`
//! example reads these records.
//!
//! It shows least privilege: the agent needs nothing but `put` under one
//! prefix, and its manifest grants exactly that, so it can neither read the
//! invoices other agents triage nor write anywhere else.
//!
//! # Checks
//!
//! The whole list is checked before anything is written; the first problem
//! fails the run with [`Error::InvalidInput`] naming the entry by its index
//! (`vendors[3]`). An entry needs six fields, may have a seventh, `iban`
//! (the shape of an IBAN, without spaces), and no others; its id must
//! be 1 to 64 ASCII letters, digits, `-` or `_`, since it becomes one record
//! key segment; ids must be unique; `country` and `currency` are upper-case
//! ISO codes; `status` is `active` or `blocked`; `approval_limit` is a decimal
//! string with at most two places. At most 100 vendors are loaded per run,
//! the host's default number of decisions per invocation.
//!
//! Vendors absent from the list keep their records: removing them would
//! need `list` and `delete`, which this example does not do.
//!
//! # Capabilities and grant
//!
//! - `records`: `put` under `vendors/`;
//! - `decisions`: one `record` per vendor; needs no grant.
//!
//! The smallest grant that runs it, as in `agent.toml`:
//!
//! ```toml
//! [[grants.records]]
//! prefix = "vendors/"
//! access = "read-write"
//! ```
//!
//! Writes are not transactional. If a write is refused or fails halfway, the
//! agent returns [`Error::Failed`] saying how many vendors were stored before
//! it; running it again with the same list is safe, because each write
//! replaces the record it wrote last time.

mod vendors;

use crate::vendors::parse_vendors;
use warden_guest_sdk::{Agent, Error, decisions, records};

/// The agent. Public so that the host build, which exists for the unit
/// tests, sees it used; on wasm32 it is also the component's export.
#[derive(Debug)]
pub struct VendorSync;

impl Agent for VendorSync {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let vendors = parse_vendors(&input).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let total = vendors.len();

        for (stored, vendor) in vendors.iter().enumerate() {
            let key = format!("vendors/{}", vendor.id);
            let value = serde_json::to_vec(vendor)
                .map_err(|e| Error::Failed(format!("cannot encode {key}: {e}")))?;
            records::put(&key, &value).map_err(|e| {
                let why = match e {
                    records::Error::NotPermitted(why) => {
                        format!("not permitted ({why}); check the grants in agent.toml")
                    }
                    records::Error::NotFound => {
                        "put answered not-found, which it never should; this is a host bug, \
                         please report it"
                            .to_owned()
                    }
                    records::Error::LimitReached(which) => which,
                    records::Error::InvalidKey(rule) => rule,
                    records::Error::Other(text) => text,
                };
                Error::Failed(format!(
                    "cannot write {key} after storing {stored} of {total} vendors: {why}"
                ))
            })?;

            let subject = format!("vendor {}", vendor.id);
            let reason = format!(
                "stored under {key}: {}, paid in {}, approval limit {}",
                vendor.status.as_str(),
                vendor.currency,
                vendor.approval_limit
            );
            decisions::record(&subject, "loaded", &reason)
                .map_err(|e| decision_failure(&subject, e))?;
        }

        Ok(format!(r#"{{"loaded":{total}}}"#).into_bytes())
    }
}

warden_guest_sdk::export_agent!(VendorSync);

/// Turns a decisions error into the agent's error, naming the subject.
fn decision_failure(subject: &str, error: decisions::Error) -> Error {
    let why = match error {
        decisions::Error::NotPermitted(why)
        | decisions::Error::LimitReached(why)
        | decisions::Error::Other(why) => why,
    };
    Error::Failed(format!("cannot record the decision on {subject}: {why}"))
}
