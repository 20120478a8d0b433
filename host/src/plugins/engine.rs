//! The one wasmtime [`Engine`] of a server: the pooling allocator (instances are made from
//! slots reserved up front, so instantiation takes microseconds), epoch interruption (a
//! ticker thread moves the epoch every [`TICK`], and each call gets a deadline in ticks), and
//! the component model.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::PluginsConfig;

/// How often the epoch moves: the granularity of call deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// The deadline of a call, in epoch ticks (at least one).
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / TICK.as_millis()).max(1) as u64
}

/// Builds the engine for `config` and starts its epoch ticker, which stops when the engine is
/// dropped.
pub(crate) fn build(config: &PluginsConfig) -> wasmtime::Result<Engine> {
    let instances = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        // Components from other languages carry several core modules (componentize-py and
        // componentize-js bring an interpreter and adapters), each with its own memory and
        // table.
        .total_core_instances(instances * 16)
        .total_memories(instances * 2)
        .total_tables(instances * 8)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(200_000)
        .max_core_instance_size(4 << 20)
        .max_component_instance_size(4 << 20)
        .max_memory_size((config.max_memory_mb as usize) << 20);
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&c)?;
    start_ticker(&engine);
    Ok(engine)
}

fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugboard-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawn the epoch ticker");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_down_to_ticks_but_never_to_zero() {
        assert_eq!(deadline_ticks(Duration::from_millis(1000)), 100);
        assert_eq!(deadline_ticks(Duration::from_millis(15)), 1);
        assert_eq!(deadline_ticks(Duration::from_millis(1)), 1);
    }
}
