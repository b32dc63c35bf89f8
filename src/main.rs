//! The `camtrapd` binary: everything lives in the library, see [`camtrapd::cli`].

fn main() -> std::process::ExitCode {
    camtrapd::cli::main()
}
