//! Sleeps forever inside a host call (a WASI clock wait), where epoch ticks
//! cannot interrupt it; only the wall-clock deadline ends it.

use warden_guest_sdk::{Agent, Error, export_agent};

struct Sleep;

impl Agent for Sleep {
    fn handle(_input: Vec<u8>) -> Result<Vec<u8>, Error> {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

export_agent!(Sleep);
