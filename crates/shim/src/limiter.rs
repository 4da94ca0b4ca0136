//! The per-container memory cap inside the engine: a linear memory (or table) may not grow past
//! the container's `memory_limit_in_bytes`. A refused grow traps the guest and is remembered, so
//! the exit is reported as `OOMKilled` with code 137, like a kernel OOM kill.

use wasmtime::ResourceLimiter;

#[derive(Default)]
pub(crate) struct MemoryLimiter {
    pub limit: Option<usize>,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        match self.limit {
            Some(limit) if desired > limit => {
                self.exceeded = true;
                Err(wasmtime::format_err!(
                    "memory limit exceeded: growing linear memory from {current} to {desired} bytes, limit {limit}"
                ))
            }
            _ => Ok(true),
        }
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
