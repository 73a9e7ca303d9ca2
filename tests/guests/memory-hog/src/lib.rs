//! Grows linear memory past the tenant's limit.
//!
//! Input `grow PAGES` asks for PAGES more 64 KiB pages with `memory.grow` and
//! reports whether the host refused (the guest sees it and carries on).
//! Input `alloc BYTES` allocates through the Rust allocator, which aborts
//! (a trap) when growth is refused.

use warden_guest_sdk::{Agent, Error, export_agent};

struct MemoryHog;

#[cfg(target_arch = "wasm32")]
fn grow(pages: usize) -> bool {
    core::arch::wasm32::memory_grow(0, pages) != usize::MAX
}

#[cfg(not(target_arch = "wasm32"))]
fn grow(_pages: usize) -> bool {
    false
}

impl Agent for MemoryHog {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let text = String::from_utf8_lossy(&input);
        let mut words = text.split_whitespace();
        let (mode, n) = (words.next().unwrap_or(""), words.next().unwrap_or("0"));
        let n: usize = n
            .parse()
            .map_err(|_| Error::InvalidInput(format!("bad number {n}")))?;
        match mode {
            "grow" if grow(n) => Ok(b"grown".to_vec()),
            "grow" => Ok(b"growth refused".to_vec()),
            "alloc" => {
                let v = vec![1u8; n];
                Ok(format!("allocated {}", std::hint::black_box(v).len()).into_bytes())
            }
            _ => Err(Error::InvalidInput(
                "use `grow PAGES` or `alloc BYTES`".into(),
            )),
        }
    }
}

export_agent!(MemoryHog);
