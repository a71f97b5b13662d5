//! The `mmdb` command: an SQL shell on a database directory, plus tool subcommands.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mmdb::Database;
use mmdb::cli::{Flow, Shell};

/// mimalloc rather than glibc's malloc: candle allocates a fresh buffer for every tensor operation,
/// and glibc hands large ones back to the kernel and faults them in again, which cost CLIP a good
/// share of its CPU time (measurements: docs/perf.md#mimalloc). Applications embedding the library
/// choose their own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// The tour: generate demo scenes, bulk-load them with the bundled model, run similarity SQL,
    /// print Recall@K.
    Demo(DemoArgs),
    /// Generate the synthetic demo scenes as a COCO captions dataset.
    DemoData(DemoDataArgs),
    /// Bulk-load a COCO captions dataset (captions JSON + image folder).
    LoadCoco(mmdb::cli::coco::LoadCocoArgs),
    /// Import precomputed embeddings in the clip-retrieval layout (img_emb/*.npy + metadata).
    ImportNpy(mmdb::cli::coco::ImportNpyArgs),
    /// Text->image and image->text Recall@K over a loaded COCO-format set.
    BenchRecall(mmdb::cli::coco::BenchRecallArgs),
    /// Print embeddings of texts and images as JSON lines.
    Embed(EmbedArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// Working folder for the generated data and the database.
    #[arg(long, default_value = "mmdb-demo")]
    dir: PathBuf,
    /// Scenes to generate.
    #[arg(long, default_value_t = 400)]
    images: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// Model (folder or hub id) [default: the bundled demo model].
    #[arg(long, default_value = mmdb::cli::DEMO_MODEL_SPEC)]
    model: String,
}

#[derive(Args)]
struct DemoDataArgs {
    /// Output folder (images/ and annotations/ go under it).
    #[arg(long)]
    out: PathBuf,
    /// Number of scenes.
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fraction of the scenes (the last ones) in the val split.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
}

#[derive(Args)]
struct EmbedArgs {
    /// Model: a folder in Hugging Face layout, a hub id, or `mmdb-demo-clip`.
    #[arg(long, default_value = mmdb::DEFAULT_MODEL)]
    model: String,
    /// A text to embed (repeatable).
    #[arg(long = "text")]
    texts: Vec<String>,
    /// An image file to embed (repeatable).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
}

#[derive(Args)]
struct ShellArgs {
    /// Database directory, created if missing. Without it: a temporary database, deleted on exit.
    db: Option<PathBuf>,
    /// Run this SQL (statements and dot-commands) and exit; may be repeated.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,
    /// What opening does with a damaged last WAL record: tolerate-torn-tail (drop it, with a
    /// warning), absolute-consistency (refuse to open), point-in-time (drop everything from the
    /// first damaged record: for databases written with sync off after a power loss).
    #[arg(long, value_name = "MODE", default_value = "tolerate-torn-tail", value_parser = parse_wal_recovery)]
    wal_recovery: mmdb::WalRecovery,
}

fn parse_wal_recovery(s: &str) -> Result<mmdb::WalRecovery, String> {
    mmdb::WalRecovery::parse(s).ok_or_else(|| {
        format!("unknown mode {s:?}: tolerate-torn-tail, absolute-consistency or point-in-time")
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Shell(args)) => shell(args),
        None => shell(cli.shell),
        Some(Command::Demo(a)) => report(mmdb::cli::run_tour(
            &mmdb::cli::TourOptions {
                dir: a.dir,
                images: a.images,
                seed: a.seed,
                model: a.model,
            },
            &mut std::io::stdout(),
        )),
        Some(Command::DemoData(a)) => report(
            mmdb::demo::generate(&a.out, a.images, a.seed, a.val_fraction).map(|s| {
                println!(
                    "wrote {} train + {} val images and {} captions to {}",
                    s.train_images,
                    s.val_images,
                    s.captions,
                    s.out_dir.display()
                )
            }),
        ),
        Some(Command::LoadCoco(a)) => report(mmdb::cli::coco::run_load_coco(&a)),
        Some(Command::ImportNpy(a)) => report(mmdb::cli::coco::run_import_npy(&a)),
        Some(Command::BenchRecall(a)) => report(mmdb::cli::coco::run_bench_recall(&a)),
        Some(Command::Embed(a)) => report(mmdb::cli::run_embed(
            &a.model,
            &a.texts,
            &a.images,
            &mut std::io::stdout(),
        )),
    }
}

/// Prints an error the way every subcommand does and turns it into the exit code.
fn report(result: mmdb::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn shell(args: ShellArgs) -> ExitCode {
    let (path, temporary) = match &args.db {
        Some(p) => (p.clone(), false),
        None => (mmdb::cli::temp_db_dir(), true),
    };
    let db = match Database::builder()
        .wal_recovery(args.wal_recovery)
        .open(&path)
    {
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
    // Each -c is a script of its own, so `-c "SELECT 1" -c "SELECT 2"` needs no ';' between them.
    if !commands.is_empty() {
        for cmd in commands {
            match shell.run_script(cmd, 1) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => break,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return close(shell, ExitCode::FAILURE);
                }
            }
        }
        return close(shell, ExitCode::SUCCESS);
    }
    let script = if !std::io::stdin().is_terminal() {
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
        let code = match shell.run_script(&text, 1) {
            Ok(Flow::Continue | Flow::Quit) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        };
        return close(shell, code);
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
    let code = interactive(&mut shell);
    close(shell, code)
}

/// Closes the shell's database (flushing recent rows to a segment) and returns `code`, or
/// failure when the close fails.
fn close(shell: Shell<std::io::Stdout>, code: ExitCode) -> ExitCode {
    match shell.close() {
        Ok(()) => code,
        Err(e) => {
            eprintln!("Error: closing the database: {e}");
            ExitCode::FAILURE
        }
    }
}

fn interactive(shell: &mut Shell<std::io::Stdout>) -> ExitCode {
    match mmdb::cli::interactive::run(shell) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
