//! Hints to the processor, for the hot loops of operators and connectors.

/// Asks the CPU to start loading the cache line at `address`, so that a
/// load of it some work later does not wait for memory.
#[inline(always)]
pub fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint with no effect on memory or registers; it
    // does not fault even for an invalid address, and SSE is part of every
    // x86_64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
