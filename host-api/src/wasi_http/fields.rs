//! Audited header fields: `wasi:http/types` `fields` calls that add
//! headers, checked against the header limits and recorded when refused.
//!
//! A guest builds a request's headers with `fields.append`, `fields.set` or
//! `fields.from-list` before it sends anything, and `wasmtime-wasi-http`
//! refuses a bad name or value there (`header-error.invalid-syntax`),
//! before warden's send hook could see it. Worse, it answers a header
//! section over its memory bound with a trap, which would end the whole
//! invocation for what is a guest mistake on one request. So warden
//! redefines these three functions in the linker: each first checks the
//! header count and size against the instance's [`HttpLimits`], then calls
//! `wasmtime-wasi-http`'s own implementation, and records every refusal as
//! one audit event naming the header, never its value.
//!
//! [`HttpLimits`]: super::HttpLimits

use wasmtime::{
    StoreContextMut,
    component::{Linker, Resource},
};
use wasmtime_wasi_http::{
    FieldMap,
    p2::{
        HeaderError,
        bindings::http::types::{HeaderError as Code, HostFields},
    },
};

use super::{HttpView, host::HeaderGuard};

/// The instance name `wasmtime-wasi-http` defines `wasi:http/types` under;
/// guests importing any 0.2 version are linked to it.
const TYPES: &str = "wasi:http/types@0.2.12";

/// Replaces the header-adding `fields` functions of `wasi:http/types` in
/// `linker` with checked and audited ones. Call after `wasmtime-wasi-http`
/// has added its own.
pub(super) fn add_to_linker<T: HttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = define(linker);
    linker.allow_shadowing(false);
    added
}

fn define<T: HttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut types = linker.instance(TYPES)?;
    types.func_wrap(
        "[method]fields.append",
        |mut store: StoreContextMut<'_, T>,
         (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
            let data = store.data_mut();
            let guard = data.http_ctx().header_guard();
            let (count, bytes) = current(data, &fields, None)?;
            let adding = (1, name.len() + value.len());
            if let Some(reason) = guard.over_limits(count, bytes, adding) {
                return Ok((Err(refuse(&guard, "append", &name, reason)?),));
            }
            let result = HostFields::append(&mut data.http(), fields, name.clone(), value);
            Ok((settle(&guard, "append", &name, result)?,))
        },
    )?;
    types.func_wrap(
        "[method]fields.set",
        |mut store: StoreContextMut<'_, T>,
         (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
            let data = store.data_mut();
            let guard = data.http_ctx().header_guard();
            // `set` replaces the values of `name`: they do not count.
            let (count, bytes) = current(data, &fields, Some(&name))?;
            let adding = (
                values.len(),
                values.iter().map(|v| name.len() + v.len()).sum(),
            );
            if let Some(reason) = guard.over_limits(count, bytes, adding) {
                return Ok((Err(refuse(&guard, "set", &name, reason)?),));
            }
            let result = HostFields::set(&mut data.http(), fields, name.clone(), values);
            Ok((settle(&guard, "set", &name, result)?,))
        },
    )?;
    types.func_wrap(
        "[static]fields.from-list",
        |mut store: StoreContextMut<'_, T>, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let data = store.data_mut();
            let guard = data.http_ctx().header_guard();
            let adding = (
                entries.len(),
                entries.iter().map(|(n, v)| n.len() + v.len()).sum(),
            );
            let first = entries.first().map_or("", |(n, _)| n.as_str()).to_owned();
            if let Some(reason) = guard.over_limits(0, 0, adding) {
                return Ok((Err(refuse(&guard, "from-list", &first, reason)?),));
            }
            // wasmtime-wasi-http does not say which entry it refused; check
            // names and values here so that the event can name it.
            let bad = entries.iter().find(|(n, v)| {
                http::HeaderName::from_bytes(n.as_bytes()).is_err()
                    || http::HeaderValue::from_bytes(v).is_err()
            });
            let named = bad.map_or(first, |(n, _)| n.clone());
            let result = HostFields::from_list(&mut data.http(), entries);
            Ok((settle(&guard, "from-list", &named, result)?,))
        },
    )?;
    Ok(())
}

/// The header count and wire bytes `fields` holds now, leaving out the
/// values of `except`.
fn current<T: HttpView>(
    data: &mut T,
    fields: &Resource<FieldMap>,
    except: Option<&str>,
) -> wasmtime::Result<(usize, usize)> {
    let view = data.http();
    let map = view.table.get(fields)?;
    let except = except.and_then(|n| http::HeaderName::from_bytes(n.as_bytes()).ok());
    let mut count = 0;
    let mut bytes = 0;
    for (name, value) in map.iter() {
        if Some(name) != except.as_ref() {
            count += 1;
            bytes += name.as_str().len() + value.len();
        }
    }
    Ok((count, bytes))
}

/// Records a refusal for limits and returns the code the guest gets:
/// `forbidden`, the closest `header-error` case to "too many".
fn refuse(
    guard: &HeaderGuard,
    function: &str,
    name: &str,
    reason: String,
) -> wasmtime::Result<Code> {
    guard.refuse(function, name, reason)?;
    Ok(Code::Forbidden)
}

/// Turns `wasmtime-wasi-http`'s answer into the guest's, recording a
/// refusal. A size bound it still hits becomes `forbidden` for the guest
/// rather than a trap of the whole invocation.
fn settle<R>(
    guard: &HeaderGuard,
    function: &str,
    name: &str,
    result: Result<R, HeaderError>,
) -> wasmtime::Result<Result<R, Code>> {
    let error = match result {
        Ok(value) => return Ok(Ok(value)),
        Err(error) => error,
    };
    let code = match error.downcast() {
        Ok(code) => code,
        Err(trap) => match trap.downcast_ref::<wasmtime_wasi_http::FieldMapError>() {
            Some(over) => {
                guard.refuse(function, name, format!("header fields refused: {over}"))?;
                return Ok(Err(Code::Forbidden));
            }
            None => return Err(trap),
        },
    };
    let reason = match code {
        Code::InvalidSyntax => {
            "header name is not a token or its value holds a control character".to_owned()
        }
        Code::Forbidden => "header is one the host sets itself".to_owned(),
        Code::Immutable => "header fields are immutable once sent or received".to_owned(),
    };
    guard.refuse(function, name, reason)?;
    Ok(Err(code))
}
