use super::CliError;
use kiln_ir::cost::si;

/// `kiln models`: one line a model.
pub fn list_models() -> Result<(), CliError> {
    let mut out = String::new();
    say!(
        out,
        "{:<18} {:>9} {:>8}  {:<6} paper",
        "name",
        "params",
        "MACs",
        "input"
    );
    for info in kiln_models::zoo() {
        let config =
            kiln_models::Config::default_for(info.name).map_err(crate::load::LoadError::from)?;
        let graph = kiln_models::build(info.name, &config).map_err(crate::load::LoadError::from)?;
        let cost = kiln_ir::cost::cost(&graph);
        say!(
            out,
            "{:<18} {:>9} {:>8}  {:<6} {}",
            info.name,
            si(cost.params),
            si(cost.macs),
            info.input_size,
            info.paper
        );
    }
    super::write_output(None, &out)
}
