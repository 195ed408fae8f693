//! A hint to the cache: start loading a value's line now, because it will be read soon.
//!
//! The state tree's updates and a block's lookups read values spread over hundreds of
//! megabytes at ten million accounts: nearly every read misses every cache and, on a virtual
//! machine, the TLB as well. A core overlaps only the misses its reorder window reaches, a few
//! iterations of a gathering loop. Hinting the lines a loop reads some iterations ahead keeps
//! many misses in flight at once (`docs/performance.md`, "Reads hinted ahead", has the
//! figures before and after).
//!
//! The instruction is `prefetcht0`, through `safe_arch` (the crate `wide` is built on), which
//! wraps the intrinsic as a safe call; on other targets the hint is nothing.

/// Hints that `value`'s cache line will be read soon. It changes nothing a program can observe
/// but time: a prefetch loads no value into a register and never faults.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(value);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    /// A prefetch leaves every value as it was, at any offset, including the last byte of an
    /// allocation and a value on the stack.
    #[test]
    fn a_prefetch_changes_no_value() {
        let values: Vec<u64> = (0..4096).collect();
        for value in &values {
            prefetch(value);
        }
        let bytes = vec![7u8; 4097];
        prefetch(&bytes[4096]);
        let on_stack = [1u32; 3];
        prefetch(&on_stack);
        assert!(values.iter().enumerate().all(|(i, v)| *v == i as u64));
        assert_eq!(bytes[4096], 7);
        assert_eq!(on_stack, [1; 3]);
    }
}
