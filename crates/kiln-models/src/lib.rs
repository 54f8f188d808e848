//! kiln's frontend: a [`GraphBuilder`] that writes layers into a
//! [`kiln_ir::Graph`] under PyTorch-style parameter names, the model zoo
//! (ResNet v1 and v2, Wide ResNet, CIFAR ResNets, GoogLeNet, BN-Inception,
//! Inception-v3) built with the names and shapes of the implementations
//! people load weights from, and seeded weight initialisation.
//!
//! ```
//! let cfg = kiln_models::Config::default_for("resnet18").unwrap().with_batch(2);
//! let graph = kiln_models::build("resnet18", &cfg).unwrap();
//! let weights = kiln_models::init_params(&graph, 0);
//! assert!(weights.contains("layer3.1.conv2.weight"));
//! assert_eq!(kiln_ir::cost::cost(&graph).params, 11_689_512);
//! ```

pub mod builder;
pub mod config;
pub mod error;
pub mod init;
pub mod models;
pub mod zoo;

pub use builder::{Conv, GraphBuilder, Pool, Scope};
pub use config::Config;
pub use error::ModelError;
pub use init::{init_params, init_params_with, randomize_bn_stats, InitScheme};
pub use zoo::{build, find, zoo, ModelInfo};
