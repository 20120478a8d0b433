//! plugboard-plugin-bench: the plugin runtime's own costs, measured in-process on a real
//! component (the echo bot unless `--wasm` names another) with the server's engine
//! (pooling allocator, epochs): instantiation from the `InstancePre`, and `on-transaction`
//! with 1 and with 100 events (converted from the queue's JSON as the transport does, through
//! the SDK's dispatch). Prints one JSON line.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use clap::Parser;
use plugboard::config::{Config, Overrides};
use plugboard::plugins::convert;
use plugboard::plugins::guest::Guest;
use plugboard::plugins::host::kv::KvShared;
use plugboard::plugins::lane::Lane;
use plugboard::plugins::manifest::Manifest;
use plugboard::plugins::schedule::TimerBook;
use plugboard::plugins::state::PluginState;
use plugboard::plugins::PluginRuntime;
use plugboard::service::appservice::registration::CompiledNamespaces;
use serde_json::{json, Value};
use wasmtime::Store;

#[derive(Parser)]
#[command(name = "plugboard-plugin-bench")]
struct Args {
    /// The component to measure.
    #[arg(
        long,
        default_value = "target/wasm-plugins/default/wasm32-wasip2/plugin/plugboard_plugin_echo_bot.wasm"
    )]
    wasm: std::path::PathBuf,
    /// Its manifest.
    #[arg(long, default_value = "plugins/echo-bot/plugin.toml")]
    manifest: std::path::PathBuf,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 5000)]
    iterations: usize,
}

fn micros(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1000.0 * 1000.0).round() / 1000.0
}

fn quantiles(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let at =
        |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    json!({"p50_us": micros(at(0.5)), "p99_us": micros(at(0.99)), "mean_us": micros(mean), "n": samples.len()})
}

/// A transaction body as the delivery queue builds it: `n` plain text messages.
fn body(n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "event_id": format!("$bench{i}"), "room_id": "!room:localhost",
                "sender": "@alice:localhost", "type": "m.room.message",
                "origin_server_ts": 1_700_000_000_000u64 + i as u64,
                "content": {"msgtype": "m.text", "body": format!("just talking {i}")},
                "unsigned": {"age": 1},
            })
        })
        .collect();
    json!({ "events": events })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("plugboard-plugin-bench-{}", std::process::id()));
    let mut config = Config::load_from(None, Vec::new(), &Overrides::default()).expect("defaults");
    config.data_dir = dir.clone();
    let runtime = PluginRuntime::new(Arc::new(config)).expect("runtime");
    let bytes =
        std::fs::read(&args.wasm).unwrap_or_else(|e| panic!("{}: {e}", args.wasm.display()));
    let manifest_text = std::fs::read_to_string(&args.manifest).expect("manifest");
    let manifest = Manifest::parse(&manifest_text, "plugin.toml").expect("manifest parses");

    let compile_start = Instant::now();
    let pre = runtime.prepare(&bytes).expect("a plugin component").pre;
    let first_load = compile_start.elapsed();
    let cached_start = Instant::now();
    let pre = {
        drop(pre);
        runtime.prepare(&bytes).expect("cached").pre
    };
    let cached_load = cached_start.elapsed();

    let namespaces =
        CompiledNamespaces::compile(&manifest.registration(), "localhost").expect("namespaces");
    let guest = Arc::new(Guest::new(
        manifest.id.clone(),
        tokio::runtime::Handle::current(),
        manifest.capabilities.clone(),
        namespaces.clone(),
    ));
    let timers = Arc::new(TimerBook::new(Vec::new()));
    let kv = Arc::new(KvShared::new(0));
    let seq = Arc::new(AtomicI64::new(1));
    let iterations = args.iterations;

    let pre_inst = pre.clone();
    let (guest_i, timers_i, kv_i, seq_i) = (guest.clone(), timers.clone(), kv.clone(), seq.clone());
    let instantiate = tokio::task::spawn_blocking(move || {
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let state = PluginState::new(
                &guest_i,
                &Weak::new(),
                kv_i.clone(),
                timers_i.clone(),
                seq_i.clone(),
                Arc::new(std::sync::atomic::AtomicBool::new(true)),
            );
            let mut store = Store::new(pre_inst.engine(), state);
            store.limiter(|s| &mut s.limits);
            store.set_epoch_deadline(100);
            let started = Instant::now();
            pre_inst.instantiate(&mut store).expect("instantiate");
            samples.push(started.elapsed());
            // The store (and with it the instance's pool slots) goes here.
            drop(store);
        }
        samples
    })
    .await
    .unwrap();

    let mut lane = Lane::new(
        guest.clone(),
        pre,
        "{}".into(),
        Weak::new(),
        kv,
        seq,
        timers,
    );
    let result = tokio::task::spawn_blocking(move || {
        let mut out = serde_json::Map::new();
        for n in [1usize, 100] {
            let body = body(n);
            let mut samples = Vec::with_capacity(iterations);
            for i in 0..iterations + 50 {
                let started = Instant::now();
                let txn = convert::transaction(&i.to_string(), &body, &namespaces);
                let ran = lane.run(None, move |p, store| p.call_on_transaction(store, &txn));
                let took = started.elapsed();
                ran.result.expect("the transaction is accepted");
                // The first calls warm the instance (and make it): not counted.
                if i >= 50 {
                    samples.push(took);
                }
            }
            let mut q = quantiles(samples.clone());
            let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
            q["per_event_us"] = json!(micros(mean / n as u32));
            q["events_per_s"] = json!((n as f64 / mean.as_secs_f64()).round());
            out.insert(format!("on_transaction_{n}"), q);
        }
        out
    })
    .await
    .unwrap();

    let line = json!({
        "component": args.wasm.display().to_string(),
        "component_bytes": bytes.len(),
        "compile_ms": first_load.as_secs_f64() * 1000.0,
        "cached_load_ms": cached_load.as_secs_f64() * 1000.0,
        "instantiate": quantiles(instantiate),
        "calls": Value::Object(result),
        "definition": "instantiate: InstancePre::instantiate into a new Store with the pooling allocator (no init call); on_transaction_N: converting a queue body of N m.text events to the WIT transaction and calling on-transaction through the lane (deadline set, effects taken), the SDK parsing and dispatching each event; compile_ms: first prepare (compile + cache write); cached_load_ms: prepare again (deserialize from the cache + instantiate_pre)",
    });
    println!("{line}");
    let _ = std::fs::remove_dir_all(dir);
}
