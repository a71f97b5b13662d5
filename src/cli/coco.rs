//! Thin command-line entries: `mmdb load-coco`, `mmdb import-npy`, `mmdb bench-recall`.
//! `main.rs` embeds these `Args` in its subcommands and calls the `run_*` functions.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::progress::Bar;
use crate::coco::{LoadOptions, beside_db, load};
use crate::coco::{NpyImportOptions, import_npy};
use crate::coco::{RecallOptions, bench_recall};
use crate::{Database, Error, Result};

/// `mmdb load-coco DB --captions F --images DIR [--model M] [--table NAME] [--split FILE]`
#[derive(Debug, Clone, clap::Args)]
pub struct LoadCocoArgs {
    /// Database folder (created if absent).
    pub db: PathBuf,
    /// COCO captions JSON, e.g. annotations/captions_val2017.json.
    #[arg(long)]
    pub captions: PathBuf,
    /// Folder of the images named in the captions file, e.g. val2017/.
    #[arg(long)]
    pub images: PathBuf,
    /// Model spec (folder or hub id) [default: the existing table's model, else the default model].
    #[arg(long)]
    pub model: Option<String>,
    /// Images table; captions go to TABLE_captions.
    #[arg(long, default_value = "coco")]
    pub table: String,
    /// Split file: Karpathy's dataset_coco.json, a CLIP_benchmark-style list, or ids / names per line.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Split to keep from a Karpathy split file.
    #[arg(long, default_value = "test")]
    pub split_name: String,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Read `file_name`s that lead outside --images (`..`, absolute paths, symbolic links out);
    /// by default they are skipped and reported.
    #[arg(long)]
    pub allow_outside_images: bool,
    /// Skip (and report) image files larger than this many bytes [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub max_image_bytes: Option<u64>,
    /// Skip (and report) images with more pixels than this [default: 178956970, Pillow's
    /// decompression-bomb limit].
    #[arg(long, value_name = "N")]
    pub max_image_pixels: Option<u64>,
    /// Skip (and report) an image whose decoding takes longer than this; 0: no deadline
    /// [default: 30000].
    #[arg(long, value_name = "MS")]
    pub decode_deadline_ms: Option<u64>,
}

/// Runs `load-coco`: prints the report; Ctrl-C stops after the current batch
/// (returns [`Error::Interrupted`] after printing what was loaded).
pub fn run_load_coco(args: &LoadCocoArgs) -> Result<()> {
    let db = Database::open(&args.db)?;
    let mut opts = LoadOptions::new(&args.captions, &args.images);
    opts.table = args.table.clone();
    opts.split = args.split.clone();
    opts.split_name = args.split_name.clone();
    opts.batch_size = args.batch_size;
    opts.allow_outside_images = args.allow_outside_images;
    let mut limits = db.image_limits().for_bulk_load();
    if let Some(n) = args.max_image_bytes {
        limits.max_bytes = n;
    }
    if let Some(n) = args.max_image_pixels {
        limits.max_pixels = n;
    }
    if let Some(ms) = args.decode_deadline_ms {
        limits.decode_deadline = (ms > 0).then(|| std::time::Duration::from_millis(ms));
    }
    opts.image_limits = Some(limits);
    opts.model = match (&args.model, db.table_schema(&args.table)) {
        (Some(m), _) => m.clone(),
        (None, Ok(schema)) => schema.model.unwrap_or(opts.model),
        (None, Err(_)) => opts.model,
    };
    let cancel = cancel_flag();
    let report = load(&db, &opts, &Bar::new(), cancel)?;
    println!("{report}");
    db.close()?;
    if report.interrupted {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// `mmdb import-npy DB --dir EMB_DIR [--table NAME] [--model M] [--identity S]`
#[derive(Debug, Clone, clap::Args)]
pub struct ImportNpyArgs {
    /// Database folder (created if absent).
    pub db: PathBuf,
    /// clip-retrieval output folder (img_emb/, text_emb/, metadata/ with JSON or JSON lines).
    #[arg(long)]
    pub dir: PathBuf,
    /// Images table; captions go to TABLE_captions.
    #[arg(long, default_value = "coco")]
    pub table: String,
    /// Model spec recorded with the tables (embeds SQL query text later).
    #[arg(long, default_value = crate::embedder::DEFAULT_MODEL)]
    pub model: String,
    /// Model identity to record instead of loading the model to read it.
    #[arg(long)]
    pub identity: Option<String>,
}

/// Runs `import-npy` and prints what was imported.
pub fn run_import_npy(args: &ImportNpyArgs) -> Result<()> {
    let db = Database::open(&args.db)?;
    let mut opts = NpyImportOptions::new(&args.dir);
    opts.table = args.table.clone();
    opts.model = args.model.clone();
    opts.identity = args.identity.clone();
    let r = import_npy(&db, &opts)?;
    println!(
        "imported {} images and {} captions from {} shard(s) into {} / {}_captions",
        r.images, r.captions, r.shards, args.table, args.table
    );
    db.close()
}

/// `mmdb bench-recall DB [--k 1,5,10] [--exact | --ef N] [--compare-exact] [--json FILE]`
#[derive(Debug, Clone, clap::Args)]
pub struct BenchRecallArgs {
    /// Database folder.
    pub db: PathBuf,
    /// Images table (captions in TABLE_captions).
    #[arg(long, default_value = "coco")]
    pub table: String,
    /// K values, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    pub k: Vec<usize>,
    /// Exact (brute-force) search instead of HNSW.
    #[arg(long, conflicts_with = "ef")]
    pub exact: bool,
    /// HNSW candidate list size [default: the table's ef_search].
    #[arg(long)]
    pub ef: Option<usize>,
    /// Also run exact search and show the HNSW-vs-exact difference.
    #[arg(long)]
    pub compare_exact: bool,
    /// Where to write the JSON report [default: DB.TABLE-recall.json beside the database].
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `bench-recall` on a read-only view: prints the table and writes the JSON report.
pub fn run_bench_recall(args: &BenchRecallArgs) -> Result<()> {
    let db = Database::open_read_only(&args.db)?;
    let opts = RecallOptions {
        table: args.table.clone(),
        k: args.k.clone(),
        exact: args.exact,
        ef: args.ef,
        compare_exact: args.compare_exact,
    };
    let report = bench_recall(&db, &opts)?;
    println!("{report}");
    let json = (args.json.clone())
        .unwrap_or_else(|| beside_db(db.path(), &format!("{}-recall.json", args.table)));
    report.write_json(&json)?;
    println!("JSON report: {}", json.display());
    Ok(())
}

/// A process-wide flag raised by the first Ctrl-C; a second Ctrl-C exits at once.
fn cancel_flag() -> &'static AtomicBool {
    static FLAG: AtomicBool = AtomicBool::new(false);
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        ctrlc::set_handler(|| {
            if FLAG.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping after the current batch (Ctrl-C again to abort now)");
        })
        .is_ok()
    });
    &FLAG
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand)]
    enum Cmd {
        LoadCoco(LoadCocoArgs),
        BenchRecall(BenchRecallArgs),
        ImportNpy(ImportNpyArgs),
    }

    #[test]
    fn parses_the_documented_command_lines() {
        let cli = Cli::try_parse_from(["mmdb", "bench-recall", "db", "--k", "1,5", "--ef", "128"])
            .unwrap();
        let Cmd::BenchRecall(b) = cli.cmd else {
            panic!("wrong subcommand")
        };
        assert_eq!(
            (b.k, b.ef, b.exact, b.table.as_str()),
            (vec![1, 5], Some(128), false, "coco")
        );
        assert!(
            Cli::try_parse_from(["mmdb", "bench-recall", "db", "--exact", "--ef", "3"]).is_err()
        );

        let cli = Cli::try_parse_from([
            "mmdb",
            "load-coco",
            "db",
            "--captions",
            "c.json",
            "--images",
            "val2017",
            "--split",
            "s.json",
        ])
        .unwrap();
        let Cmd::LoadCoco(l) = cli.cmd else {
            panic!("wrong subcommand")
        };
        assert_eq!(
            (l.batch_size, l.split_name.as_str(), l.model),
            (64, "test", None)
        );

        let cli = Cli::try_parse_from(["mmdb", "import-npy", "db", "--dir", "emb"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::ImportNpy(_)));
    }
}
