//! The model zoo: every model by name, with its paper, defaults and figures.

use crate::config::Config;
use crate::error::ModelError;
use crate::init::{Fan, InitScheme, WeightInit};
use crate::models::googlenet::Variant;
use crate::models::resnet::{Block, ResNetSpec};
use crate::models::{bn_inception, cifar, googlenet, inception_v3, resnet};
use kiln_ir::Graph;

/// One zoo entry. `params` and `macs` are the figures at the default
/// configuration ([`ModelInfo::default_config`]); `tests/zoo.rs` rebuilds
/// every model and checks them, and `min_input`, against the graphs.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// The zoo name (`resnet50`).
    pub name: &'static str,
    /// The paper, short: authors, year, title.
    pub paper: &'static str,
    pub arxiv: &'static str,
    /// What the graph reproduces, in a few words (`torchvision resnet50`).
    pub reference: &'static str,
    /// Default input height and width.
    pub input_size: usize,
    pub num_classes: usize,
    /// Default drop probability, or `None` for models without dropout.
    pub dropout: Option<f32>,
    /// Whether the model has optional auxiliary classifiers.
    pub aux_logits: bool,
    /// The smallest square input the model accepts (without aux heads).
    pub min_input: usize,
    /// Trainable parameters (BatchNorm running statistics excluded) at the defaults.
    pub params: u64,
    /// Multiply-accumulates of one forward pass at the defaults (batch 1).
    pub macs: u64,
    /// The weight initialisation rules ([`crate::init_params`]).
    pub init: InitScheme,
    arch: Arch,
}

#[derive(Clone, Copy, Debug)]
enum Arch {
    ResNet(ResNetSpec),
    PreAct(Block, [usize; 4]),
    CifarResNet { n: usize },
    WideResNet { depth: usize, k: usize },
    GoogLeNet(Variant),
    BnInception,
    InceptionV3,
}

impl ModelInfo {
    pub fn default_config(&self) -> Config {
        Config {
            batch: 1,
            height: self.input_size,
            width: self.input_size,
            num_classes: self.num_classes,
            in_channels: 3,
            dropout: self.dropout.unwrap_or(0.0),
            aux_logits: false,
        }
    }

    /// Builds the model's graph for `cfg` (checked first); the graph is named
    /// after the model and verified.
    pub fn build(&self, cfg: &Config) -> Result<Graph, ModelError> {
        cfg.check(self)?;
        self.build_unchecked(cfg)
    }

    /// Builds without checking `cfg` first, so that errors come from the
    /// layer that refuses: for probing which inputs a model accepts (the
    /// tests find `min_input` this way). Bad values still fail with an
    /// error, never a panic, but the message is less direct.
    pub fn build_unchecked(&self, cfg: &Config) -> Result<Graph, ModelError> {
        let name = self.name;
        match self.arch {
            Arch::ResNet(spec) => resnet::resnet(name, cfg, spec),
            Arch::PreAct(block, layers) => resnet::preact_resnet(name, cfg, block, layers),
            Arch::CifarResNet { n } => cifar::resnet_cifar(name, cfg, n),
            Arch::WideResNet { depth, k } => cifar::wide_resnet(name, cfg, depth, k),
            Arch::GoogLeNet(variant) => googlenet::googlenet(name, cfg, variant),
            Arch::BnInception => bn_inception::bn_inception(name, cfg),
            Arch::InceptionV3 => inception_v3::inception_v3(name, cfg),
        }
    }
}

const RESNET: &str = "He et al. 2015, Deep Residual Learning for Image Recognition";
const RESNET_ARXIV: &str = "1512.03385";
const PREACT: &str = "He et al. 2016, Identity Mappings in Deep Residual Networks";
const WRN: &str = "Zagoruyko and Komodakis 2016, Wide Residual Networks";
const GOOGLENET: &str = "Szegedy et al. 2014, Going Deeper with Convolutions";
const BN: &str = "Ioffe and Szegedy 2015, Batch Normalization: Accelerating Deep Network Training";
const V3: &str = "Szegedy et al. 2015, Rethinking the Inception Architecture for Computer Vision";

/// torchvision's ResNet init: conv He normal, fan-out; `nn.Linear` default.
const TV_RESNET: InitScheme = InitScheme {
    conv: WeightInit::HeNormal(Fan::Out),
    dense: WeightInit::TorchDefault,
    overrides: &[],
};
/// akamaster's CIFAR ResNets: `kaiming_normal_` (fan-in) on convs and the linear layer.
const CIFAR_INIT: InitScheme = InitScheme {
    conv: WeightInit::HeNormal(Fan::In),
    dense: WeightInit::HeNormal(Fan::In),
    overrides: &[],
};
/// torchvision's GoogLeNet: truncated normal, std 0.01.
const GOOGLENET_INIT: InitScheme = InitScheme {
    conv: WeightInit::TruncNormal { std: 0.01 },
    dense: WeightInit::TruncNormal { std: 0.01 },
    overrides: &[],
};
/// torchvision's Inception-v3: truncated normal, std 0.1; its aux head's
/// `conv1` 0.01 and `fc` 0.001.
const V3_INIT: InitScheme = InitScheme {
    conv: WeightInit::TruncNormal { std: 0.1 },
    dense: WeightInit::TruncNormal { std: 0.1 },
    overrides: &[
        ("AuxLogits.conv1.", WeightInit::TruncNormal { std: 0.01 }),
        ("AuxLogits.fc.", WeightInit::TruncNormal { std: 0.001 }),
    ],
};

macro_rules! entry {
    ($name:literal, $paper:expr, $arxiv:expr, $reference:literal, $size:literal, $classes:literal,
     $dropout:expr, $aux:literal, $min:literal, $params:literal, $macs:literal, $init:expr, $arch:expr) => {
        ModelInfo {
            name: $name,
            paper: $paper,
            arxiv: $arxiv,
            reference: $reference,
            input_size: $size,
            num_classes: $classes,
            dropout: $dropout,
            aux_logits: $aux,
            min_input: $min,
            params: $params,
            macs: $macs,
            init: $init,
            arch: $arch,
        }
    };
}

const fn tv(block: Block, layers: [usize; 4], width_per_group: usize) -> Arch {
    Arch::ResNet(ResNetSpec {
        block,
        layers,
        width_per_group,
    })
}

use Block::{Basic, Bottleneck};

static ZOO: [ModelInfo; 22] = [
    entry!(
        "resnet18",
        RESNET,
        RESNET_ARXIV,
        "torchvision resnet18",
        224,
        1000,
        None,
        false,
        1,
        11_689_512,
        1_814_073_344,
        TV_RESNET,
        tv(Basic, [2, 2, 2, 2], 64)
    ),
    entry!(
        "resnet34",
        RESNET,
        RESNET_ARXIV,
        "torchvision resnet34",
        224,
        1000,
        None,
        false,
        1,
        21_797_672,
        3_663_761_408,
        TV_RESNET,
        tv(Basic, [3, 4, 6, 3], 64)
    ),
    entry!(
        "resnet50",
        RESNET,
        RESNET_ARXIV,
        "torchvision resnet50 (v1.5: stride on the 3x3)",
        224,
        1000,
        None,
        false,
        1,
        25_557_032,
        4_089_184_256,
        TV_RESNET,
        tv(Bottleneck, [3, 4, 6, 3], 64)
    ),
    entry!(
        "resnet101",
        RESNET,
        RESNET_ARXIV,
        "torchvision resnet101 (v1.5)",
        224,
        1000,
        None,
        false,
        1,
        44_549_160,
        7_801_405_440,
        TV_RESNET,
        tv(Bottleneck, [3, 4, 23, 3], 64)
    ),
    entry!(
        "resnet152",
        RESNET,
        RESNET_ARXIV,
        "torchvision resnet152 (v1.5)",
        224,
        1000,
        None,
        false,
        1,
        60_192_808,
        11_513_626_624,
        TV_RESNET,
        tv(Bottleneck, [3, 8, 36, 3], 64)
    ),
    entry!(
        "wide-resnet50-2",
        WRN,
        "1605.07146",
        "torchvision wide_resnet50_2",
        224,
        1000,
        None,
        false,
        1,
        68_883_240,
        11_398_021_120,
        TV_RESNET,
        tv(Bottleneck, [3, 4, 6, 3], 128)
    ),
    entry!(
        "wide-resnet101-2",
        WRN,
        "1605.07146",
        "torchvision wide_resnet101_2",
        224,
        1000,
        None,
        false,
        1,
        126_886_696,
        22_753_050_624,
        TV_RESNET,
        tv(Bottleneck, [3, 4, 23, 3], 128)
    ),
    entry!(
        "preact-resnet18",
        PREACT,
        "1603.05027",
        "full pre-activation, as fb.resnet.torch preresnet.lua",
        224,
        1000,
        None,
        false,
        1,
        11_687_720,
        1_814_073_344,
        TV_RESNET,
        Arch::PreAct(Basic, [2, 2, 2, 2])
    ),
    entry!(
        "preact-resnet34",
        PREACT,
        "1603.05027",
        "full pre-activation, as fb.resnet.torch preresnet.lua",
        224,
        1000,
        None,
        false,
        1,
        21_795_880,
        3_663_761_408,
        TV_RESNET,
        Arch::PreAct(Basic, [3, 4, 6, 3])
    ),
    entry!(
        "preact-resnet50",
        PREACT,
        "1603.05027",
        "full pre-activation, as fb.resnet.torch preresnet.lua",
        224,
        1000,
        None,
        false,
        1,
        25_549_352,
        4_089_184_256,
        TV_RESNET,
        Arch::PreAct(Bottleneck, [3, 4, 6, 3])
    ),
    entry!(
        "preact-resnet101",
        PREACT,
        "1603.05027",
        "full pre-activation, as fb.resnet.torch preresnet.lua",
        224,
        1000,
        None,
        false,
        1,
        44_541_480,
        7_801_405_440,
        TV_RESNET,
        Arch::PreAct(Bottleneck, [3, 4, 23, 3])
    ),
    entry!(
        "preact-resnet152",
        PREACT,
        "1603.05027",
        "full pre-activation, as fb.resnet.torch preresnet.lua",
        224,
        1000,
        None,
        false,
        1,
        60_185_128,
        11_513_626_624,
        TV_RESNET,
        Arch::PreAct(Bottleneck, [3, 8, 36, 3])
    ),
    entry!(
        "resnet20-cifar",
        RESNET,
        RESNET_ARXIV,
        "CIFAR-10 ResNet, option-A shortcuts (section 4.2)",
        32,
        10,
        None,
        false,
        1,
        269_722,
        40_551_040,
        CIFAR_INIT,
        Arch::CifarResNet { n: 3 }
    ),
    entry!(
        "resnet32-cifar",
        RESNET,
        RESNET_ARXIV,
        "CIFAR-10 ResNet, option-A shortcuts (section 4.2)",
        32,
        10,
        None,
        false,
        1,
        464_154,
        68_862_592,
        CIFAR_INIT,
        Arch::CifarResNet { n: 5 }
    ),
    entry!(
        "resnet44-cifar",
        RESNET,
        RESNET_ARXIV,
        "CIFAR-10 ResNet, option-A shortcuts (section 4.2)",
        32,
        10,
        None,
        false,
        1,
        658_586,
        97_174_144,
        CIFAR_INIT,
        Arch::CifarResNet { n: 7 }
    ),
    entry!(
        "resnet56-cifar",
        RESNET,
        RESNET_ARXIV,
        "CIFAR-10 ResNet, option-A shortcuts (section 4.2)",
        32,
        10,
        None,
        false,
        1,
        853_018,
        125_485_696,
        CIFAR_INIT,
        Arch::CifarResNet { n: 9 }
    ),
    entry!(
        "resnet110-cifar",
        RESNET,
        RESNET_ARXIV,
        "CIFAR-10 ResNet, option-A shortcuts (section 4.2)",
        32,
        10,
        None,
        false,
        1,
        1_727_962,
        252_887_680,
        CIFAR_INIT,
        Arch::CifarResNet { n: 18 }
    ),
    entry!(
        "wrn-28-10",
        WRN,
        "1605.07146",
        "CIFAR-10 WRN-28-10, pre-activation, dropout optional",
        32,
        10,
        Some(0.0),
        false,
        1,
        36_479_194,
        5_243_328_768,
        TV_RESNET,
        Arch::WideResNet { depth: 28, k: 10 }
    ),
    entry!(
        "googlenet",
        GOOGLENET,
        "1409.4842",
        "torchvision googlenet (BN, 3x3 in the 5x5 branch)",
        224,
        1000,
        Some(0.2),
        true,
        15,
        6_624_904,
        1_498_376_192,
        GOOGLENET_INIT,
        Arch::GoogLeNet(Variant::Torchvision)
    ),
    entry!(
        "googlenet-paper",
        GOOGLENET,
        "1409.4842",
        "the paper's table 1 (5x5, LRN, no BN), as BVLC Caffe",
        224,
        1000,
        Some(0.4),
        true,
        31,
        6_998_552,
        1_582_671_872,
        InitScheme::TORCH_DEFAULT,
        Arch::GoogLeNet(Variant::Paper)
    ),
    entry!(
        "bn-inception",
        BN,
        "1502.03167",
        "pretrainedmodels bninception (the Caffe port)",
        224,
        1000,
        None,
        false,
        31,
        11_295_240,
        2_032_600_064,
        InitScheme::TORCH_DEFAULT,
        Arch::BnInception
    ),
    entry!(
        "inception-v3",
        V3,
        "1512.00567",
        "torchvision inception_v3 (aux head optional)",
        299,
        1000,
        Some(0.5),
        true,
        75,
        23_834_568,
        5_713_216_096,
        V3_INIT,
        Arch::InceptionV3
    ),
];

/// Every model, in a fixed order (families together).
pub fn zoo() -> &'static [ModelInfo] {
    &ZOO
}

/// Other spellings people use: torchvision's and pretrainedmodels' own names.
const ALIASES: [(&str, &str); 2] = [
    ("bninception", "bn-inception"),
    ("inceptionv3", "inception-v3"),
];

fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "-")
}

/// The zoo entry for `name`, matched without regard to case and with `_`
/// taken as `-` (so torchvision's `wide_resnet50_2` and `inception_v3`
/// resolve), plus pretrainedmodels' `bninception`. An unknown name is
/// [`ModelError::Unknown`] with the closest names.
pub fn find(name: &str) -> Result<&'static ModelInfo, ModelError> {
    let key = normalize(name);
    let key = ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key.as_str(), |(_, to)| to);
    ZOO.iter()
        .find(|m| m.name == key)
        .ok_or_else(|| ModelError::Unknown {
            name: name.to_string(),
            suggestions: suggestions(name),
        })
}

/// Builds zoo model `name` with `cfg`.
pub fn build(name: &str, cfg: &Config) -> Result<Graph, ModelError> {
    find(name)?.build(cfg)
}

/// Up to five zoo names close to `name`: within an edit distance of a third
/// of the name's length (at least 2), or containing it; nearest first.
pub fn suggestions(name: &str) -> Vec<String> {
    let key = normalize(name);
    if key.is_empty() {
        return Vec::new();
    }
    let limit = (key.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = ZOO
        .iter()
        .filter_map(|m| {
            let d = kiln_ir::suggest::edit_distance(&key, m.name);
            (d <= limit || m.name.contains(key.as_str())).then_some((d, m.name))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_with_aliases_and_case() {
        assert_eq!(find("ResNet50").unwrap().name, "resnet50");
        assert_eq!(find("wide_resnet50_2").unwrap().name, "wide-resnet50-2");
        assert_eq!(find("inception_v3").unwrap().name, "inception-v3");
        assert_eq!(find("bninception").unwrap().name, "bn-inception");
    }

    #[test]
    fn unknown_names_get_the_nearest_suggestions() {
        let err = find("resnet51").unwrap_err();
        let ModelError::Unknown {
            name,
            suggestions: close,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(name, "resnet51");
        assert_eq!(close[0], "resnet50");
        assert!(err.to_string().contains("did you mean"), "{err}");
        assert_eq!(
            suggestions("googlenet-papr"),
            vec!["googlenet-paper".to_string()]
        );
        assert!(suggestions("wrn").contains(&"wrn-28-10".to_string()));
        assert!(suggestions("zzzzzzzzzzzz").is_empty());
        assert!(find("").unwrap_err().to_string().contains("kiln models"));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ZOO.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ZOO.len());
    }
}
