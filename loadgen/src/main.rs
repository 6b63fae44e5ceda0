//! `loadgen` binary: see the library docs (`loadgen::cli` for the command line).

fn main() {
    std::process::exit(loadgen::main());
}
