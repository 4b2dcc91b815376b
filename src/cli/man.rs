//! `sdss man`: the man page (roff) on stdout, or with `--dir DIR` one page per
//! command written into DIR.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::manual;

/// Arguments of `sdss man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command (sdss.1, sdss-lab.1, sdss-lab-up.1, ...) into
    /// this folder, created if missing, and the lab file's page
    /// (sdss-lab-file.5) into `man5` beside it when the folder is `man1`
    /// (else into it too); print their paths.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the lab file's page, sdss-lab-file(5), instead of sdss(1).
    #[arg(long, conflicts_with = "dir")]
    lab_file: bool,
}

/// Prints the man page, or writes them all.
pub fn run(args: ManArgs) -> ExitCode {
    match write(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            super::report_error(&error);
            ExitCode::from(2)
        }
    }
}

fn write(args: ManArgs) -> anyhow::Result<()> {
    let command = super::Cli::command();
    if args.lab_file {
        let source = format!("sdss {}", env!("CARGO_PKG_VERSION"));
        return super::print_bytes(manual::lab_file_page(&source).as_bytes())
            .context("writing the man page");
    }
    let Some(dir) = args.dir else {
        return super::print_bytes(&manual::page(command)).context("writing the man page");
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let written = manual::write_pages(command, &dir)
        .with_context(|| format!("writing the man pages into {}", dir.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
