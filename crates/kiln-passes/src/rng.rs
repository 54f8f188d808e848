//! A small seeded generator for the random choices of passes (fresh weights,
//! starting points of fits): xorshift64* (Vigna 2016), one stream per
//! (seed, parameter name), so results never depend on the order of layers.

pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    /// The stream for `name` under `seed`.
    pub fn for_name(seed: u64, name: &str) -> Rng {
        // Mix the name's bytes with a multiplicative hash, then avalanche
        // (Murmur3's finaliser) so that similar names get unrelated streams.
        let mut h = seed ^ 0x6A09_E667_F3BC_C909;
        for &b in name.as_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        Rng { state: h | 1, spare: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.uniform();
        self.spare = Some(r * angle.sin());
        r * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, name| {
            let mut r = Rng::for_name(seed, name);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, "a.weight"), draw(1, "a.weight"));
        assert_ne!(draw(1, "a.weight"), draw(2, "a.weight"));
        assert_ne!(draw(1, "a.weight"), draw(1, "b.weight"));
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut r = Rng::for_name(3, "x");
        let xs: Vec<f64> = (0..100_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean}, variance {var}");
    }
}
