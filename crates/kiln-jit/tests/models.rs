//! Every zoo model at batch 1 and 2, at a reduced input size, against the
//! interpreter (1e-4 relative to the largest output), with both tile paths.
//! Sizes are the smallest that still exercise every layer kind (the deep
//! ResNets at 16x16 still run every stride-2 and every bottleneck) so that the
//! interpreter, not the JIT, does not dominate the suite's time.

mod common;

use kiln_models::{build, init_params, randomize_bn_stats, Config};

fn check(name: &str, size: usize, batches: &[usize]) {
    for &batch in batches {
        let cfg = Config::default_for(name)
            .unwrap()
            .with_input(size)
            .with_batch(batch);
        let g = build(name, &cfg).unwrap();
        let mut p = init_params(&g, 1);
        randomize_bn_stats(&g, &mut p, 2);
        common::check_graph(&g, &p, 1e-4, &format!("{name} {size}x{size} batch {batch}"));
    }
}

macro_rules! zoo_test {
    ($test:ident, $name:literal, $size:literal, $batches:expr) => {
        #[test]
        fn $test() {
            check($name, $size, &$batches);
        }
    };
}

zoo_test!(resnet18, "resnet18", 32, [1, 2]);
zoo_test!(resnet34, "resnet34", 32, [1, 2]);
zoo_test!(resnet50, "resnet50", 16, [1, 2]);
zoo_test!(resnet101, "resnet101", 16, [1, 2]);
zoo_test!(resnet152, "resnet152", 16, [1, 2]);
zoo_test!(wide_resnet50_2, "wide-resnet50-2", 16, [1, 2]);
// 127M parameters: batch 2 would only repeat batch 1's weights at twice the
// interpreter time; batch 2 is covered by every other model.
zoo_test!(wide_resnet101_2, "wide-resnet101-2", 8, [1]);
zoo_test!(preact_resnet18, "preact-resnet18", 32, [1, 2]);
zoo_test!(preact_resnet34, "preact-resnet34", 32, [1, 2]);
zoo_test!(preact_resnet50, "preact-resnet50", 16, [1, 2]);
zoo_test!(preact_resnet101, "preact-resnet101", 16, [1, 2]);
zoo_test!(preact_resnet152, "preact-resnet152", 16, [1, 2]);
zoo_test!(resnet20_cifar, "resnet20-cifar", 32, [1, 2]);
zoo_test!(resnet32_cifar, "resnet32-cifar", 32, [1, 2]);
zoo_test!(resnet44_cifar, "resnet44-cifar", 16, [1, 2]);
zoo_test!(resnet56_cifar, "resnet56-cifar", 16, [1, 2]);
zoo_test!(resnet110_cifar, "resnet110-cifar", 16, [1, 2]);
zoo_test!(wrn_28_10, "wrn-28-10", 8, [1, 2]);
zoo_test!(googlenet, "googlenet", 32, [1, 2]);
zoo_test!(googlenet_paper, "googlenet-paper", 32, [1, 2]);
zoo_test!(bn_inception, "bn-inception", 32, [1, 2]);
zoo_test!(inception_v3, "inception-v3", 75, [1, 2]);
