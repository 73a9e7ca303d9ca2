//! The standard WASI interfaces every agent is linked with, except the
//! filesystem.
//!
//! wasmtime-wasi's `add_to_linker_async` links all of WASI at once,
//! `wasi:filesystem` included; warden links the same interfaces one by one
//! here and serves `wasi:filesystem` itself
//! ([`warden_host_api::wasi_filesystem`]), so that no file call reaches the
//! disk unchecked and unrecorded. What each interface can do is set per
//! store by the [`wasmtime_wasi::WasiCtx`] the runtime builds: captured
//! stdout and stderr, no environment, sockets refused.

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::{
    WasiView,
    cli::{WasiCli, WasiCliView as _},
    clocks::{WasiClocks, WasiClocksView as _},
    p2::bindings::{cli, clocks, random, sockets},
    random::{WasiRandom, WasiRandomView as _},
    sockets::{WasiSockets, WasiSocketsView as _},
};

/// Lends `wasi:io` the store's resource table.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:cli` and
/// `wasi:sockets` to `linker`: the interfaces of wasmtime-wasi's
/// `add_to_linker_async` without `wasi:filesystem`.
///
/// # Errors
///
/// Fails when the linker already defines one of these imports.
pub(crate) fn add_to_linker<T: WasiView + 'static>(l: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi_io::bindings::wasi::io;
    io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;

    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;

    // Linked so that components importing sockets still load; the context
    // refuses every socket (see `Runtime::run`).
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::network::add_to_linker::<T, WasiSockets>(
        l,
        &sockets::network::LinkOptions::default(),
        T::sockets,
    )?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    Ok(())
}
