//! Loops forever in guest code; only the CPU deadline ends it.

use warden_guest_sdk::{Agent, Error, export_agent};

struct Spin;

impl Agent for Spin {
    fn handle(_input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_agent!(Spin);
