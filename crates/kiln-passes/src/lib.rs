//! kiln-passes
