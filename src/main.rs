//! The `burnish` command line; see `burnish --help`.

/// Tensor buffers of the same sizes are freed and reallocated every step; see Cargo.toml for why not glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    burnish::cli::main()
}
