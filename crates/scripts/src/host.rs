//! The functions the prelude is given (`host` in `js/prelude.js`): what JavaScript in
//! QuickJS cannot do by itself or should not do slowly — log, call out over HTTP, hash,
//! draw random bytes, encode — and the built-in vendor modules.

use std::rc::Rc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rquickjs::{Ctx, Exception, Function, Object, Value};
use sha2::Digest as _;
use tessera_core::actions::LogLevel;

use crate::http::Http;
use crate::sandbox::{HostState, VendorUrls};

const TWILIO: &str = include_str!("js/twilio.js");
const PLIVO: &str = include_str!("js/plivo.js");
/// The parts of the prelude parsed on first use (see `js/prelude.js`).
const LIBS: [(&str, &str); 6] = [
    ("buffer", include_str!("js/lib/buffer.js")),
    ("web", include_str!("js/lib/web.js")),
    ("crypto", include_str!("js/lib/crypto.js")),
    ("axios", include_str!("js/lib/axios.js")),
    ("tokens", include_str!("js/lib/tokens.js")),
    ("util", include_str!("js/lib/util.js")),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn digest(algorithm: &str, key: Option<&[u8]>, data: &[u8]) -> Option<Vec<u8>> {
    macro_rules! run {
        ($h:ty) => {
            match key {
                Some(k) => {
                    let mut m = <Hmac<$h> as Mac>::new_from_slice(k).ok()?;
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                None => <$h>::digest(data).to_vec(),
            }
        };
    }
    Some(match algorithm {
        "sha1" => run!(sha1::Sha1),
        "sha256" => run!(sha2::Sha256),
        "sha384" => run!(sha2::Sha384),
        "sha512" => run!(sha2::Sha512),
        _ => return None,
    })
}

fn level(name: &str) -> LogLevel {
    match name {
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        _ => LogLevel::Log,
    }
}

/// The `host` object for one execution.
pub(crate) fn functions<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<HostState>,
    http: &Rc<Http>,
    vendors: &VendorUrls,
) -> rquickjs::Result<Object<'js>> {
    let host = Object::new(ctx.clone())?;
    let s = state.clone();
    host.set("log", Function::new(ctx.clone(), move |lvl: String, message: String| s.log(level(&lvl), &message))?)?;

    let (s, h) = (state.clone(), http.clone());
    host.set(
        "fetch",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, request: String| -> rquickjs::Result<String> {
            let left = s.time_left();
            h.fetch(&request, left).map_err(|e| Exception::throw_type(&ctx, &e))
        })?,
    )?;
    host.set(
        "random",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, n: f64| -> rquickjs::Result<String> {
            if !(0.0..=65536.0).contains(&n) {
                return Err(Exception::throw_range(&ctx, "randomBytes takes 0 to 65536 bytes"));
            }
            let mut bytes = vec![0u8; n as usize];
            getrandom::getrandom(&mut bytes).map_err(|e| Exception::throw_internal(&ctx, &e.to_string()))?;
            Ok(hex(&bytes))
        })?,
    )?;
    host.set(
        "digest",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, alg: String, key: String, data: String, keyed: bool| -> rquickjs::Result<String> {
                let bad = || Exception::throw_type(&ctx, "bytes must be hex");
                let data = unhex(&data).ok_or_else(bad)?;
                let key = if keyed { Some(unhex(&key).ok_or_else(bad)?) } else { None };
                let out = digest(&alg, key.as_deref(), &data)
                    .ok_or_else(|| Exception::throw_type(&ctx, &format!("Digest method not supported: {alg}")))?;
                Ok(hex(&out))
            },
        )?,
    )?;
    host.set("utf8", Function::new(ctx.clone(), |text: String| hex(text.as_bytes()))?)?;
    host.set(
        "unutf8",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, h: String| -> rquickjs::Result<String> {
            let bytes = unhex(&h).ok_or_else(|| Exception::throw_type(&ctx, "bytes must be hex"))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        })?,
    )?;
    host.set(
        "base64",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, h: String, url: bool| -> rquickjs::Result<String> {
            let bytes = unhex(&h).ok_or_else(|| Exception::throw_type(&ctx, "bytes must be hex"))?;
            Ok(if url {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            } else {
                base64::engine::general_purpose::STANDARD.encode(bytes)
            })
        })?,
    )?;
    host.set(
        "unbase64",
        Function::new(ctx.clone(), |text: String| {
            // Node decodes either alphabet, with or without padding, and skips what is not base64.
            let clean: String = text
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
                .collect();
            hex(&base64::engine::general_purpose::STANDARD_NO_PAD.decode(clean).unwrap_or_default())
        })?,
    )?;
    host.set("uuid", Function::new(ctx.clone(), || uuid::Uuid::new_v4().to_string())?)?;
    host.set(
        "lib",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, name: String| -> rquickjs::Result<Function<'js>> {
            let Some((_, source)) = LIBS.iter().find(|(n, _)| *n == name) else {
                return Err(Exception::throw_type(&ctx, &format!("no library {name}")));
            };
            ctx.eval(*source)
        })?,
    )?;
    let vendors = vendors.clone();
    host.set(
        "vendor",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, name: String, deps: Value<'js>| -> rquickjs::Result<Value<'js>> {
                let (source, config) = match name.as_str() {
                    "twilio" => {
                        (TWILIO, serde_json::json!({"api": vendors.twilio_api, "verify": vendors.twilio_verify}))
                    }
                    "plivo" => (PLIVO, serde_json::json!({"api": vendors.plivo_api})),
                    _ => return Err(Exception::throw_type(&ctx, &format!("Cannot find module '{name}'"))),
                };
                let module: Function = ctx.eval(source)?;
                let config = ctx.json_parse(config.to_string())?;
                module.call((deps, config))
            },
        )?,
    )?;
    Ok(host)
}
