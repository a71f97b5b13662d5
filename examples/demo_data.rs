//! Writes the demo COCO-format dataset: `cargo run --example demo_data -- --out DIR --images N --seed S [--val F]`.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Number of images over both splits.
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// RNG seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of images (the last ones) in the val split.
    #[arg(long, default_value_t = 0.1)]
    val: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let summary = mmdb::demo::generate(&args.out, args.images, args.seed, args.val)?;
    println!(
        "wrote {} train + {} val images, {} captions to {}",
        summary.train_images,
        summary.val_images,
        summary.captions,
        summary.out_dir.display()
    );
    Ok(())
}
