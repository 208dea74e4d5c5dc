//! The `burnish` command line; see `burnish --help`.

/// Tensor buffers of the same sizes are freed and reallocated every step; see Cargo.toml for why not glibc's malloc.
/// The wrapper counts allocations for `burnish bench --profile` and only forwards otherwise.
#[global_allocator]
static ALLOCATOR: burnish::profile::Counting<mimalloc::MiMalloc> = burnish::profile::Counting(mimalloc::MiMalloc);

/// `mi_option_purge_delay` in mimalloc 2.1+ and 3.x (their `mimalloc.h`; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // A training step frees and reallocates the same large buffers every step; purged pages come back zeroed through
    // page faults, 10-15 % of a FixMatch + IAM-D step (docs/kernels.md, "Allocation"). Keep them instead: the
    // resident memory stays at the step's peak, which it reaches every step anyway.
    // SAFETY: plain calls into the allocator's option table, before any thread exists.
    unsafe {
        if (20100..40000).contains(&libmimalloc_sys::mi_version()) {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
    burnish::cli::main()
}
