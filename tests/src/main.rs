//! The `plugboard` binary under another name, so that end-to-end tests in this package can
//! start it as a process (`CARGO_BIN_EXE_plugboard-test-server`) and kill it with SIGKILL.

fn main() -> std::process::ExitCode {
    plugboard::cli::main()
}
