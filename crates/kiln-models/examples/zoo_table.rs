//! Prints every zoo model's figures measured on the built graphs: parameters,
//! MACs and activation bytes at the default configuration, and the smallest
//! square input that builds. docs/models.md was written from this output:
//! `cargo run -p kiln-models --example zoo_table --release`.

use kiln_ir::cost::{cost, grouped};

fn main() {
    println!("| model | input | params | MACs | smallest input |");
    println!("| --- | --- | --- | --- | --- |");
    for m in kiln_models::zoo() {
        let cfg = m.default_config();
        let g = match m.build(&cfg) {
            Ok(g) => g,
            Err(e) => {
                println!("| {} | error: {e} | | | |", m.name);
                continue;
            }
        };
        let c = cost(&g);
        // The smallest size that builds, ignoring the table's own minimum.
        let smallest =
            (1..=cfg.height).find(|&s| m.build_unchecked(&cfg.clone().with_input(s)).is_ok());
        println!(
            "| {} | {} | {} | {} | {} |",
            m.name,
            cfg.height,
            grouped(c.params),
            grouped(c.macs),
            smallest.map_or("-".to_string(), |s| s.to_string())
        );
    }
}
