//! The `locgate` binary: everything lives in the library; see `locgate::cli`.

fn main() -> std::process::ExitCode {
    locgate::cli::main()
}
