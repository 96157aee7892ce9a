//! The `pgsnap` binary: argument parsing and output over the library.

mod cli;

/// A restore allocates and frees chunk-sized buffers (4 MiB: decompressed,
/// converted) at a high rate on several threads. glibc's malloc hands many of
/// them back to the kernel and takes them again, page-faulting and zeroing
/// every page each time: some 15% of the client's CPU in a restore. mimalloc,
/// told to keep freed memory for 10 s before giving it back, reuses them
/// (docs/benchmarks.md). The library leaves the choice to the application.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (libmimalloc-sys
/// has no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // mimalloc reads its options when it starts, before `main`: a default
    // set here would come too late, so the value is set outright unless
    // the environment gives one.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain option of the allocator, before any thread
        // starts.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    }
    // A write past the file size limit (`ulimit -f`) would kill the process
    // with SIGXFSZ, leaving a temporary file and no message; ignored, the
    // write fails with EFBIG and the run cleans up and says so.
    // SAFETY: sets a signal's disposition before any thread starts.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    cli::main()
}
