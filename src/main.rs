//! The `burnish` command line; see `burnish --help`.

/// Tensor buffers of the same sizes are freed and reallocated every step; see Cargo.toml for why not glibc's malloc.
/// The wrapper counts allocations for `burnish bench --profile` and only forwards otherwise.
#[global_allocator]
static ALLOCATOR: burnish::profile::Counting<mimalloc::MiMalloc> = burnish::profile::Counting(mimalloc::MiMalloc);

fn main() -> std::process::ExitCode {
    burnish::cli::main()
}
