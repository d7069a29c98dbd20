//! `evident`, the command-line client.

fn main() -> anyhow::Result<()> {
    eprintln!("evident: no commands yet");
    std::process::exit(2);
}
