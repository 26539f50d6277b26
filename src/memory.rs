//! How the controller keeps its memory flat under glibc's malloc.
//!
//! A controller runs for months on a steady stream of small messages. glibc's malloc
//! gives each busy thread an arena of its own and hands little of the freed memory back,
//! so the resident size crept up for as long as the process ran although the live heap
//! did not (heap profile of the soak in BENCHMARKS.md: live heap +1 MB, RSS +3.5 MB).
//! Two measures: one arena for the whole process, and a thread that asks malloc once a
//! minute to return the free pages in the middle of its heap. Elsewhere (musl, other
//! systems) both are no-ops.

use std::time::Duration;

/// How often free heap pages go back to the system. A trim of the controller's heap
/// takes well under a millisecond (it holds the one arena's lock meanwhile).
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// One malloc arena, and a fixed mmap threshold: glibc otherwise raises the threshold
/// each time a large mapped block is freed, after which sled's 512 KB write buffers come
/// from the heap and pin it. Must run before any other thread exists: first thing in
/// `main`. 10 000 OCPP messages/s still take under half a core with it (BENCHMARKS.md).
/// (mimalloc and jemalloc were tried instead: more RSS, not less.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_malloc() {
    const ARENAS: libc::c_int = 1;
    const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets an allocator tunable; no other thread is running yet.
    let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
    // SAFETY: as above.
    let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if set != 1 || mmap != 1 {
        eprintln!("note: cannot tune malloc (arenas, mmap threshold); memory use may creep");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_malloc() {}

/// Starts the thread that returns free heap pages every [`TRIM_EVERY`]. It lives as long
/// as the process.
pub fn start_trimming() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            trim();
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the malloc trim thread ({e}); memory use may creep");
    }
}

/// Returns the whole free pages of the heap to the system; live memory is untouched.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim only releases memory malloc holds free; no pointer changes.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

/// What malloc holds, split into what the program uses and what malloc keeps free. RSS
/// alone cannot tell a leak (in use grows) from fragmentation (free held grows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes in live allocations on the heap.
    pub in_use_bytes: u64,
    /// Free bytes malloc keeps in its heap (resident or not: a trimmed page counts here).
    pub free_held_bytes: u64,
    /// Bytes of the large allocations malloc maps on their own (reserved address space:
    /// only the pages written are resident).
    pub mapped_bytes: u64,
}

/// The allocator's current figures; `None` where malloc cannot say (not glibc). They
/// cover malloc's main arena: all of the heap in the controller, which runs with one
/// arena ([`tune_malloc`]), part of it in a process with several (the tests).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_usage() -> Option<HeapUsage> {
    // SAFETY: mallinfo2 only reads the allocator's counters (glibc 2.33 and later).
    let info = unsafe { libc::mallinfo2() };
    Some(HeapUsage {
        in_use_bytes: info.uordblks as u64,
        free_held_bytes: info.fordblks as u64,
        mapped_bytes: info.hblkhd as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_usage() -> Option<HeapUsage> {
    None
}

/// The process's resident set size in bytes (`VmRSS` of `/proc/self/status`), where the
/// system has it.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
