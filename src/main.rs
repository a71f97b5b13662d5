//! The `mmdb` command: an SQL shell on a database directory, plus tool subcommands.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mmdb::Database;
use mmdb::repl::{Flow, Shell};

#[derive(Parser)]
#[command(
    name = "mmdb",
    version,
    about = "Embedded vector database with multimodal (CLIP) search"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    shell: ShellArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the SQL shell (what `mmdb [DB_PATH]` does).
    Shell(ShellArgs),
}

#[derive(Args)]
struct ShellArgs {
    /// Database directory, created if missing. Without it: a temporary database, deleted on exit.
    db: Option<PathBuf>,
    /// Run this SQL (statements and dot-commands) and exit; may be repeated.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Shell(args)) => shell(args),
        None => shell(cli.shell),
    }
}

fn shell(args: ShellArgs) -> ExitCode {
    let (path, temporary) = match &args.db {
        Some(p) => (p.clone(), false),
        None => (mmdb::repl::temp_db_dir(), true),
    };
    let db = match Database::open(&path) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = run_shell(db, &path, temporary, &args.commands);
    if temporary {
        let _ = std::fs::remove_dir_all(&path);
    }
    code
}

fn run_shell(
    db: Database,
    path: &std::path::Path,
    temporary: bool,
    commands: &[String],
) -> ExitCode {
    let mut shell = Shell::new(db, std::io::stdout());
    // -c: run each command; piped stdin: run it as a script. Both stop at the first error.
    let script = if !commands.is_empty() {
        Some(commands.join("\n"))
    } else if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("Error: reading stdin: {e}");
            return ExitCode::FAILURE;
        }
        Some(text)
    } else {
        None
    };
    if let Some(text) = script {
        return match shell.run_script(&text, 1) {
            Ok(Flow::Continue | Flow::Quit) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let what = if temporary {
        format!(
            "a temporary database at {} (deleted on exit; use `mmdb PATH` to keep data)",
            path.display()
        )
    } else {
        format!("database {}", path.display())
    };
    println!(
        "mmdb {} — {what}\nEnter \".help\" for usage hints.",
        env!("CARGO_PKG_VERSION")
    );
    interactive(&mut shell)
}

#[cfg(feature = "repl")]
fn interactive(shell: &mut Shell<std::io::Stdout>) -> ExitCode {
    match mmdb::repl::interactive::run(shell) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "repl"))]
fn interactive(_: &mut Shell<std::io::Stdout>) -> ExitCode {
    eprintln!("Error: this mmdb was built without the `repl` feature; use -c SQL or pipe a script");
    ExitCode::FAILURE
}
