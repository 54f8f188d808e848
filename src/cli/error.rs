use thiserror::Error;

/// Everything a command can fail with; each message names the file, model or
/// option at fault.
#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    #[error(transparent)]
    Ir(#[from] kiln_ir::IrError),
    #[error(transparent)]
    Params(#[from] kiln_ir::ParamError),
    #[error(transparent)]
    Npy(#[from] kiln_ir::npy::NpyError),
    #[error(transparent)]
    Interp(#[from] kiln_interp::InterpError),
    #[error(transparent)]
    Pass(#[from] kiln_passes::RunError),
    #[error(transparent)]
    Jit(#[from] kiln_jit::JitError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}
