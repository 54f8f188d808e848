//! Seeded weight initialisation.
//!
//! Every tensor's values depend only on the seed and the parameter's name
//! (and its shape and the rule that applies to it): each parameter gets its
//! own stream, `SplitMix64` seeded from the seed and an FNV-1a hash of the
//! name, with Box-Muller normals. The generator is written here rather than
//! taken from a crate so that the streams never change with a dependency's
//! version: a seed names the same weights forever.
//!
//! The rules follow the reference implementations (see [`InitScheme`] and
//! docs/models.md): torchvision's ResNets draw conv weights from He normal
//! with fan-out, its GoogLeNet and Inception-v3 from a truncated normal
//! (std 0.01 and 0.1), the CIFAR ResNets He normal with fan-in as the usual
//! PyTorch port does, and everything else PyTorch's module defaults. The
//! values are not PyTorch's (its generator is not reproduced), only the
//! distributions are.

use crate::zoo;
use kiln_ir::{Graph, Op, ParamStore, Tensor};
use std::collections::HashMap;

/// SplitMix64 (Steele, Lea and Flood, 2014) with Box-Muller normals.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            spare: None,
        }
    }

    /// The stream of parameter `name` under `seed`.
    pub fn for_tensor(seed: u64, name: &str) -> Rng {
        let mut mixer = Rng::new(seed ^ fnv1a(name.as_bytes()));
        Rng::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box-Muller; the second value of each pair is kept for the next call).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // in (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Which fan He initialisation divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fan {
    /// Input channels x kernel area (`nn.init.kaiming_normal_`'s default).
    In,
    /// Output channels x kernel area (torchvision's ResNets).
    Out,
}

/// How one weight tensor of a conv or dense layer is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightInit {
    /// PyTorch's default for `nn.Conv2d` and `nn.Linear`
    /// (`kaiming_uniform_(a=sqrt(5))`): `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    TorchDefault,
    /// He et al. 2015, `kaiming_normal_(nonlinearity="relu")`: `N(0, 2 / fan)`.
    HeNormal(Fan),
    /// `N(0, std^2)` truncated to `[-2, 2]` (absolute bounds, as torchvision
    /// calls `trunc_normal_`), redrawn outside.
    TruncNormal { std: f32 },
}

/// The rules of one model. Biases of convs and dense layers are always
/// PyTorch's default `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (no reference
/// model re-initialises them); BatchNorm gets weight 1, bias 0, running mean
/// 0, running variance 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InitScheme {
    pub conv: WeightInit,
    pub dense: WeightInit,
    /// Parameter-name prefixes with their own rule, first match wins
    /// (Inception-v3's aux head: std 0.01 and 0.001).
    pub overrides: &'static [(&'static str, WeightInit)],
}

impl InitScheme {
    /// PyTorch's module defaults everywhere.
    pub const TORCH_DEFAULT: InitScheme = InitScheme {
        conv: WeightInit::TorchDefault,
        dense: WeightInit::TorchDefault,
        overrides: &[],
    };

    /// The scheme of the zoo model named `name`, or [`InitScheme::TORCH_DEFAULT`].
    pub fn for_model(name: &str) -> InitScheme {
        zoo::find(name)
            .map(|m| m.init)
            .unwrap_or(InitScheme::TORCH_DEFAULT)
    }

    fn weight_rule(&self, name: &str, default: WeightInit) -> WeightInit {
        self.overrides
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map_or(default, |&(_, w)| w)
    }
}

/// What a parameter is, from the slot of the first op that reads it.
#[derive(Clone, Copy, Debug)]
enum Role {
    Weight {
        rule: WeightInit,
        fan_in: usize,
        fan_out: usize,
    },
    /// A bias, `U(-bound, bound)`.
    Bias {
        bound: f64,
    },
    Constant(f32),
}

/// Initial values for every parameter of `g`, by the rules of the zoo model
/// the graph is named after ([`InitScheme::for_model`]). Deterministic:
/// the same seed gives the same tensors, and a tensor's values do not
/// depend on the other parameters of the graph.
pub fn init_params(g: &Graph, seed: u64) -> ParamStore {
    init_params_with(g, seed, &InitScheme::for_model(&g.name))
}

/// [`init_params`] with an explicit scheme. A parameter's role comes from
/// the first op (in node order) that reads it: conv and dense weights and
/// biases, BatchNorm slots. A parameter that no such slot reads (none in the
/// zoo) is drawn from `N(0, 1)`.
pub fn init_params_with(g: &Graph, seed: u64, scheme: &InitScheme) -> ParamStore {
    let roles = roles(g, scheme);
    let mut store = ParamStore::new();
    for (_, name, ty) in g.params() {
        let mut rng = Rng::for_tensor(seed, name);
        let n = ty.elements();
        let data: Vec<f32> = match roles.get(name) {
            Some(Role::Constant(c)) => vec![*c; n],
            Some(Role::Bias { bound }) => (0..n)
                .map(|_| rng.uniform_in(-bound, *bound) as f32)
                .collect(),
            Some(&Role::Weight {
                rule,
                fan_in,
                fan_out,
            }) => draw_weight(&mut rng, n, rule, fan_in, fan_out),
            None => (0..n).map(|_| rng.normal() as f32).collect(),
        };
        store.insert(
            name,
            Tensor {
                shape: ty.shape.clone(),
                data,
            },
        );
    }
    store
}

fn draw_weight(
    rng: &mut Rng,
    n: usize,
    rule: WeightInit,
    fan_in: usize,
    fan_out: usize,
) -> Vec<f32> {
    match rule {
        WeightInit::TorchDefault => {
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            (0..n)
                .map(|_| rng.uniform_in(-bound, bound) as f32)
                .collect()
        }
        WeightInit::HeNormal(fan) => {
            let fan = match fan {
                Fan::In => fan_in,
                Fan::Out => fan_out,
            };
            let std = (2.0 / fan.max(1) as f64).sqrt();
            (0..n).map(|_| (std * rng.normal()) as f32).collect()
        }
        WeightInit::TruncNormal { std } => (0..n)
            .map(|_| truncated_normal(rng, std as f64, 2.0) as f32)
            .collect(),
    }
}

/// `N(0, std^2)` redrawn until inside `[-bound, bound]`. After 64 misses (only
/// possible when `std` dwarfs the bound) the draw is clamped, so it always ends.
fn truncated_normal(rng: &mut Rng, std: f64, bound: f64) -> f64 {
    for _ in 0..64 {
        let z = std * rng.normal();
        if z.abs() <= bound {
            return z;
        }
    }
    (std * rng.normal()).clamp(-bound, bound)
}

fn roles(g: &Graph, scheme: &InitScheme) -> HashMap<String, Role> {
    let mut roles = HashMap::new();
    let param_at = |operands: &[kiln_ir::Value], slot: usize| -> Option<(String, Vec<usize>)> {
        let v = *operands.get(slot)?;
        let name = g.op(v.node).param_name()?.to_string();
        Some((name, g.value_type(v)?.shape.clone()))
    };
    for id in g.node_ids() {
        let operands = g.operands(id);
        let mut found: Vec<(String, Role)> = Vec::new();
        match g.op(id) {
            Op::Conv2d(c) => {
                if let Some((name, w)) = param_at(&operands, 1).filter(|(_, w)| w.len() == 4) {
                    let area = w[2] * w[3];
                    let (fan_in, fan_out) = (w[1] * area, w[0] * area);
                    let rule = scheme.weight_rule(&name, scheme.conv);
                    found.push((
                        name,
                        Role::Weight {
                            rule,
                            fan_in,
                            fan_out,
                        },
                    ));
                    if let Some((bias, _)) = c.bias_slot().and_then(|s| param_at(&operands, s)) {
                        found.push((
                            bias,
                            Role::Bias {
                                bound: 1.0 / (fan_in.max(1) as f64).sqrt(),
                            },
                        ));
                    }
                }
            }
            Op::Dense(d) => {
                if let Some((name, w)) = param_at(&operands, 1).filter(|(_, w)| w.len() == 2) {
                    let (fan_in, fan_out) = (w[1], w[0]);
                    let rule = scheme.weight_rule(&name, scheme.dense);
                    found.push((
                        name,
                        Role::Weight {
                            rule,
                            fan_in,
                            fan_out,
                        },
                    ));
                    if let Some((bias, _)) = d.bias.then(|| param_at(&operands, 2)).flatten() {
                        found.push((
                            bias,
                            Role::Bias {
                                bound: 1.0 / (fan_in.max(1) as f64).sqrt(),
                            },
                        ));
                    }
                }
            }
            Op::BatchNorm(_) => {
                for (slot, value) in [(1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0)] {
                    if let Some((name, _)) = param_at(&operands, slot) {
                        found.push((name, Role::Constant(value)));
                    }
                }
            }
            _ => {}
        }
        for (name, role) in found {
            roles.entry(name).or_insert(role);
        }
    }
    roles
}

/// Replaces every BatchNorm's parameters with random ones, as the reference
/// data's `export_models.py` does, so that tests of BatchNorm folding are
/// meaningful: running mean `N(0, 0.1^2)`, running variance `U(0.5, 1.5)`,
/// weight `U(0.5, 1.5)`, bias `N(0, 0.1^2)`. Seeded per name like
/// [`init_params`] (on a stream of its own). Returns how many BatchNorms it changed.
pub fn randomize_bn_stats(g: &Graph, store: &mut ParamStore, seed: u64) -> usize {
    // A distinct seed so that a BN's randomized weight is not its init stream reused.
    let seed = seed ^ 0xB47C_4A0B_5EED_0001;
    let mut count = 0;
    for id in g.node_ids() {
        if !matches!(g.op(id), Op::BatchNorm(_)) {
            continue;
        }
        count += 1;
        for (slot, v) in g.operands(id).into_iter().enumerate().skip(1) {
            let Some(name) = g.op(v.node).param_name() else {
                continue;
            };
            let Some(ty) = g.value_type(v) else { continue };
            let mut rng = Rng::for_tensor(seed, name);
            let data = (0..ty.elements())
                .map(|_| match slot {
                    1 | 4 => rng.uniform_in(0.5, 1.5) as f32,
                    _ => (0.1 * rng.normal()) as f32,
                })
                .collect();
            store.insert(
                name,
                Tensor {
                    shape: ty.shape.clone(),
                    data,
                },
            );
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // First outputs of the reference C implementation seeded with 1234567.
        let mut r = Rng::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut r = Rng::new(7);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
    }

    #[test]
    fn streams_depend_on_seed_and_name_only() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::for_tensor(3, "fc.weight");
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::for_tensor(3, "fc.weight");
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::for_tensor(3, "fc.bias");
                move |_| r.next_u64()
            })
            .collect();
        let d: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::for_tensor(4, "fc.weight");
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn truncated_normal_stays_inside_the_bounds() {
        let mut r = Rng::new(1);
        assert!((0..10_000).all(|_| truncated_normal(&mut r, 1.5, 2.0).abs() <= 2.0));
        assert!((0..100).all(|_| truncated_normal(&mut r, 1e6, 2.0).abs() <= 2.0));
    }
}
