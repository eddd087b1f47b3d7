//! The C allocator's settings for a process that hosts the component.
//!
//! Each call moves a message through the host in pieces (256 KiB blob reads,
//! cipher and digest updates) and in buffers of up to [`crate::blobs::SPILL_BYTES`]
//! (a blob held in memory). glibc's defaults give every allocation over
//! 128 KiB its own `mmap`, then raise that threshold as such buffers are
//! freed, and hand the top of the heap back to the kernel once 2× the
//! threshold is free there: a process that builds or parses one message
//! after another maps, faults in, zeroes and unmaps the same megabytes for
//! every message (page faults and page zeroing were about a tenth of a
//! 10 MB build's samples). Measured side by side (docs/benchmarks.md),
//! building 10 MB through the component took 33.6 ms with the defaults and
//! 23.9 ms with these settings; the native engine did not move (22.5 ms).
//!
//! The cost is memory kept: each of glibc's arenas may hold up to
//! [`TRIM_THRESHOLD`] of freed memory at its top instead of returning it.
//! Buffers over [`MMAP_THRESHOLD`] (a 200 MB message's) are still mapped
//! and returned as they are freed.

/// Allocations at least this large get their own mapping.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of an arena past which it is returned.
pub const TRIM_THRESHOLD: usize = 64 << 20;

/// Applies the settings above to this process's allocator. Call it once,
/// early in `main`, in a process that runs [`crate::runtime::Runtime`] calls;
/// it does nothing where the C library is not glibc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; both values are
    // within what glibc accepts (its mmap threshold is at most 32 MiB on 64-bit).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}
