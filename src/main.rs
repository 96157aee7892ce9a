//! The `pgsnap` binary: argument parsing and output over the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
