fn main() -> std::process::ExitCode {
    plugboard::cli::main()
}
