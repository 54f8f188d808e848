use super::{prepare, write_output, CliError, ModelArgs};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Dot,
    Svg,
}

#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Output file (standard output without it).
    #[arg(short, long)]
    pub output: Option<String>,
}

/// Renders a graph in one of the dump formats.
pub(crate) fn render(g: &kiln_ir::Graph, format: Format) -> Result<String, CliError> {
    Ok(match format {
        Format::Text => kiln_ir::text::print(g),
        Format::Json => kiln_ir::json::to_json(g),
        Format::Dot => kiln_ir::dot::to_dot(g),
        Format::Svg => kiln_ir::svg::to_svg(g).map_err(|e| CliError::Usage(e.to_string()))?,
    })
}

pub fn dump(args: DumpArgs) -> Result<(), CliError> {
    let p = prepare(&args.model)?;
    write_output(args.output.as_deref(), &render(&p.graph, args.format)?)
}
