//! Waits for the number of milliseconds given as its input, then returns
//! `done`: a run that takes a known time, for shutdown and load tests.

use warden_guest_sdk::{Agent, Error, export_agent};

struct Pause;

impl Agent for Pause {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let text = String::from_utf8_lossy(&input);
        let ms: u64 = text
            .trim()
            .parse()
            .map_err(|_| Error::InvalidInput(format!("input {text:?} is not milliseconds")))?;
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(b"done".to_vec())
    }
}

export_agent!(Pause);
