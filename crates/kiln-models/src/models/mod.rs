//! The model families, one file each. Each exposes its blocks (in the
//! current scope of a [`GraphBuilder`](crate::GraphBuilder)) as well as the
//! whole network, so a block can be built and tested on its own.

pub mod bn_inception;
pub mod cifar;
pub mod googlenet;
pub mod inception_v3;
pub mod resnet;
