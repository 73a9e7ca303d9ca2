//! A plain WASI command: a valid component that exports `wasi:cli/run`
//! instead of `warden:agent/handler`.

fn main() {
    println!("not an agent");
}
