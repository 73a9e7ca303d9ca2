//! The benchmark's trivial agent: stores its input under `bench/k`, reads it
//! back and returns it. Two record calls, nothing else.
//!
//! Grant: `bench/` read-write.

use warden_guest_sdk::{Agent, Error, export_agent, records};

struct Trivial;

impl Agent for Trivial {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        records::put("bench/k", &input).map_err(|e| Error::Failed(e.to_string()))?;
        records::get("bench/k").map_err(|e| Error::Failed(e.to_string()))
    }
}

export_agent!(Trivial);
