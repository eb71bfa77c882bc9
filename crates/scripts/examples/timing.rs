//! Where the time of one execution goes (not part of the tests):
//! `cargo run --release -p tessera-scripts --example timing`.
use std::time::Instant;

use rquickjs::{Context, Function, Runtime};

const PRELUDE: &str = include_str!("../src/js/prelude.js");
const API: &str = include_str!("../src/js/api/post_login.js");

fn main() {
    let rt = Runtime::new().unwrap();
    rt.set_memory_limit(64 << 20);
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let ctx = Context::full(&rt).unwrap();
        drop(ctx);
    }
    println!("Context::full + drop: {:.1} µs", t.elapsed().as_micros() as f64 / f64::from(n));
    let ctx = Context::full(&rt).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        ctx.with(|ctx| {
            let _: Function = ctx.eval(PRELUDE).unwrap();
        });
    }
    println!("parse prelude ({} bytes): {:.1} µs", PRELUDE.len(), t.elapsed().as_micros() as f64 / f64::from(n));
    let t = Instant::now();
    for _ in 0..n {
        ctx.with(|ctx| {
            let _: Function = ctx.eval(API).unwrap();
        });
    }
    println!("parse post-login api ({} bytes): {:.1} µs", API.len(), t.elapsed().as_micros() as f64 / f64::from(n));
    let t = Instant::now();
    for _ in 0..n {
        rt.run_gc();
    }
    println!("run_gc: {:.1} µs", t.elapsed().as_micros() as f64 / f64::from(n));
}
