//! Writes a marker into linear memory, or scans all of linear memory for it.
//!
//! The marker is 4 KiB of bytes from a generator seeded by the input, so that
//! the scanner never holds a copy of it: it regenerates the bytes while
//! comparing, and a match must cover all 4 KiB.
//!
//! - `write SEED` fills a leaked 4 KiB buffer with the marker;
//! - `scan SEED` reports `found` or `clean`;
//! - `write-and-scan SEED` does both in one instance, which must report
//!   `found` (the check that the scan can see a marker at all).

#![expect(
    unsafe_code,
    reason = "scanning raw linear memory is the point of this guest"
)]

use warden_guest_sdk::{Agent, Error, export_agent};

const MARKER_BYTES: usize = 4096;

struct Marker;

/// The generator: xorshift64*, one byte per step.
struct Bytes(u64);

impl Iterator for Bytes {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        Some((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8)
    }
}

fn write(seed: u64) {
    let marker: Vec<u8> = Bytes(seed).take(MARKER_BYTES).collect();
    std::mem::forget(std::hint::black_box(marker));
}

#[cfg(target_arch = "wasm32")]
fn memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65536
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_bytes() -> usize {
    0
}

fn scan(seed: u64) -> bool {
    let first = Bytes(seed).next().unwrap_or(0);
    let size = memory_bytes();
    (0..size.saturating_sub(MARKER_BYTES)).any(|addr| {
        // SAFETY: addr..addr+MARKER_BYTES lies inside linear memory, whose
        // size memory_size reports; every byte of it is readable.
        let read = |i: usize| unsafe { std::ptr::read_volatile((addr + i) as *const u8) };
        read(0) == first
            && Bytes(seed)
                .take(MARKER_BYTES)
                .enumerate()
                .all(|(i, b)| read(i) == b)
    })
}

impl Agent for Marker {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let text = String::from_utf8_lossy(&input);
        let mut words = text.split_whitespace();
        let mode = words.next().unwrap_or("");
        let seed: u64 = words
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| *s != 0)
            .ok_or_else(|| Error::InvalidInput("give a non-zero seed".into()))?;
        let found = match mode {
            "write" => {
                write(seed);
                return Ok(b"written".to_vec());
            }
            "scan" => scan(seed),
            "write-and-scan" => {
                write(seed);
                scan(seed)
            }
            _ => {
                return Err(Error::InvalidInput(
                    "use write, scan or write-and-scan".into(),
                ));
            }
        };
        Ok(if found {
            b"found".to_vec()
        } else {
            b"clean".to_vec()
        })
    }
}

export_agent!(Marker);
