//! The `burnish` command line; see `burnish --help`.

fn main() -> std::process::ExitCode {
    burnish::cli::main()
}
