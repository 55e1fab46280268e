//! One module per subcommand.

mod self_test;
mod test_vectors;

/// What a command found, when it ran to the end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything checked out.
    Success,
    /// A check or verification failed; the details were printed.
    CheckFailed,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write the published token test vectors (docs/test-vectors.json).
    TestVectors(test_vectors::Args),
    /// Run the power-up self-tests of every cryptographic primitive.
    SelfTest(self_test::Args),
}

pub(crate) fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::TestVectors(args) => test_vectors::run(args),
        Command::SelfTest(args) => self_test::run(args),
    }
}
