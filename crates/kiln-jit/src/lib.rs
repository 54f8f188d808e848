//! kiln-jit
