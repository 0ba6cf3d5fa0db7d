//! `kiln`: the operator's command line (`kiln --help`, `kiln help COMMAND`).
//!
//! Reads `.kiln/local.env` (written by `deploy/local/up.sh`) and the
//! environment; every option that has a variable says so in its help.
//! Exit codes: 0 done, 1 it failed (a service refused, a file is missing),
//! 2 the command line or an argument is wrong. `--json` prints one JSON
//! document on stdout for scripts.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

mod api_client;
mod output;
mod partner;
mod prerender;
mod sample_image;
mod sign;
mod upload;

use output::{Failure, Output};

#[derive(Parser)]
#[command(name = "kiln", version, about = "Kiln's operator command line", long_about = None)]
struct Cli {
    /// Print one JSON document on stdout instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a signed /img/ URL, e.g. `kiln sign 800x600,f:webp photos/cat.jpg`.
    Sign(sign::SignArgs),
    /// Print a signed /card/ URL, e.g.
    /// `kiln sign-card 'article/hello.jpg?title=Hello%20world&author=Ada'`.
    SignCard(sign::SignCardArgs),
    /// Upload an original into the originals bucket.
    Upload(upload::UploadArgs),
    /// Write a synthetic sample JPEG (used by up.sh and bench/).
    SampleImage(sample_image::SampleImageArgs),
    /// Partners and their keys, straight against PostgreSQL.
    #[command(subcommand)]
    Partner(partner::PartnerCommand),
    /// Submit a bulk pre-render job and follow its progress until it is done.
    Prerender(prerender::PrerenderArgs),
    /// Print a shell completion script, e.g. `kiln completions bash > /etc/bash_completion.d/kiln`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    if let Err(err) = kiln_infra::env_file::load() {
        eprintln!("kiln: {err:#}");
        return ExitCode::FAILURE;
    }
    // Usage errors exit 2, --help and --version 0 (clap's own codes).
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    let result = match cli.command {
        Command::Sign(args) => sign::sign(&args, &out),
        Command::SignCard(args) => sign::sign_card(&args, &out),
        Command::Upload(args) => upload::run(&args, &out),
        Command::SampleImage(args) => sample_image::run(&args, &out),
        Command::Partner(command) => partner::run(command, &out),
        Command::Prerender(args) => prerender::run(&args, &out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("kiln: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(err)) => {
            eprintln!("kiln: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for args in [
            &["kiln", "partner", "frobnicate"][..],
            &["kiln", "partner", "create"],
            &["kiln", "partner", "create", "acme", "--rate", "fast"],
            &["kiln", "sign", "100x100"],
            &["kiln", "nonsense"],
        ] {
            let err = Cli::try_parse_from(args).err().expect("refused");
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        let help = Cli::try_parse_from(["kiln", "partner", "--help"])
            .err()
            .expect("help");
        assert_eq!(help.exit_code(), 0);
    }
}
