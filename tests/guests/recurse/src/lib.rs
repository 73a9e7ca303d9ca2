//! Recurses without end, with a frame that lives on the stack, until the
//! stack overflows and the guest traps.

use warden_guest_sdk::{Agent, Error, export_agent};

struct Recurse;

#[inline(never)]
fn down(depth: u64, bottom: u64) -> u64 {
    if depth == bottom {
        return 0;
    }
    let frame = std::hint::black_box([depth; 16]);
    down(depth + 1, bottom).wrapping_add(frame[(depth % 16) as usize])
}

impl Agent for Recurse {
    fn handle(_input: Vec<u8>) -> Result<Vec<u8>, Error> {
        // The bottom is never reached; black_box keeps the compiler from
        // knowing that.
        Ok(down(0, std::hint::black_box(u64::MAX))
            .to_le_bytes()
            .to_vec())
    }
}

export_agent!(Recurse);
