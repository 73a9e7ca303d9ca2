//! Asks approval for the action its input names and returns the answer:
//! `approved`, `denied`, or `error: ` and the error.

use warden_guest_sdk::{Agent, Error, approvals, export_agent};

struct Approval;

impl Agent for Approval {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let action = String::from_utf8_lossy(&input).into_owned();
        let answer = match approvals::request(&action, "the test asks") {
            Ok(approvals::Decision::Approved) => "approved".to_owned(),
            Ok(approvals::Decision::Denied) => "denied".to_owned(),
            Err(e) => format!("error: {e:?}"),
        };
        Ok(answer.into_bytes())
    }
}

export_agent!(Approval);
