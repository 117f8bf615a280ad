//! Autocovariances of chains, averaged over chains, computed lag by lag on demand.
//!
//! Geyer's initial sequence usually stops after a few lags, so the first lags are computed
//! directly in O(n) each. When a chain mixes slowly enough that many lags are needed, all of them
//! are computed at once with a radix-2 FFT in O(n log n): the biased autocovariance
//! γ̂ₖ = (1/n) Σᵢ (xᵢ − x̄)(xᵢ₊ₖ − x̄) is the inverse transform of the power spectrum of the centred
//! chain padded with zeros to at least 2n (so that the circular correlation does not wrap).

use std::f64::consts::PI;

/// Lags computed directly before switching to the FFT.
const DIRECT_LAGS: usize = 32;

/// Mean over chains of each chain's biased autocovariance.
pub(crate) struct MeanAutocovariance {
    n_chains: usize,
    n_draws: usize,
    /// Each chain minus its own mean, chain after chain.
    centred: Vec<f64>,
    /// Lags computed so far.
    values: Vec<f64>,
}

impl MeanAutocovariance {
    /// `values` holds `n_chains` chains of `n_draws` draws each, chain after chain.
    pub(crate) fn new(values: &[f64], n_chains: usize, n_draws: usize) -> Self {
        let mut centred = values.to_vec();
        for chain in centred.chunks_exact_mut(n_draws) {
            let mean = chain.iter().sum::<f64>() / n_draws as f64;
            for x in chain.iter_mut() {
                *x -= mean;
            }
        }
        MeanAutocovariance {
            n_chains,
            n_draws,
            centred,
            values: Vec::new(),
        }
    }

    /// The mean autocovariance at `lag` (< n_draws).
    pub(crate) fn at(&mut self, lag: usize) -> f64 {
        while self.values.len() <= lag {
            if self.values.len() >= DIRECT_LAGS {
                self.compute_all_with_fft();
                break;
            }
            let k = self.values.len();
            let n = self.n_draws;
            let total: f64 = self
                .centred
                .chunks_exact(n)
                .map(|chain| {
                    chain[..n - k]
                        .iter()
                        .zip(&chain[k..])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                        / n as f64
                })
                .sum();
            self.values.push(total / self.n_chains as f64);
        }
        self.values[lag]
    }

    fn compute_all_with_fft(&mut self) {
        let n = self.n_draws;
        let size = (2 * n).next_power_of_two();
        let twiddles = Twiddles::new(size);
        let mut sums = vec![0.0; n];
        let mut re = vec![0.0; size];
        let mut im = vec![0.0; size];
        for chain in self.centred.chunks_exact(n) {
            re[..n].copy_from_slice(chain);
            re[n..].fill(0.0);
            im.fill(0.0);
            fft(&mut re, &mut im, &twiddles);
            for (r, i) in re.iter_mut().zip(im.iter_mut()) {
                *r = *r * *r + *i * *i;
                *i = 0.0;
            }
            // The power spectrum is real and even, so the forward transform equals the inverse
            // one up to the factor 1 / size.
            fft(&mut re, &mut im, &twiddles);
            for (s, r) in sums.iter_mut().zip(&re[..n]) {
                *s += r / size as f64 / n as f64;
            }
        }
        self.values = sums.into_iter().map(|s| s / self.n_chains as f64).collect();
    }
}

/// exp(−2πik/size) for k < size/2.
struct Twiddles {
    cos: Vec<f64>,
    sin: Vec<f64>,
}

impl Twiddles {
    fn new(size: usize) -> Twiddles {
        let (sin, cos) = (0..size / 2)
            .map(|k| (-2.0 * PI * k as f64 / size as f64).sin_cos())
            .unzip();
        Twiddles { cos, sin }
    }
}

/// The forward discrete Fourier transform X_k = Σⱼ xⱼ exp(−2πijk/n), in place, for n a power of
/// two: iterative Cooley–Tukey after a bit-reversal permutation.
fn fft(re: &mut [f64], im: &mut [f64], twiddles: &Twiddles) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        let stride = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..half {
                let (wr, wi) = (twiddles.cos[k * stride], twiddles.sin[k * stride]);
                let (a, b) = (start + k, start + k + half);
                let tr = re[b] * wr - im[b] * wi;
                let ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_and_direct_autocovariances_agree() {
        // A deterministic, autocorrelated sequence.
        let n = 100;
        let mut x = 0.3;
        let values: Vec<f64> = (0..2 * n)
            .map(|i| {
                x = 0.9 * x + ((i * 7919) % 13) as f64 / 13.0 - 0.5;
                x
            })
            .collect();
        let mut direct = MeanAutocovariance::new(&values, 2, n);
        let direct_values: Vec<f64> = (0..DIRECT_LAGS).map(|k| direct.at(k)).collect();
        let mut with_fft = MeanAutocovariance::new(&values, 2, n);
        with_fft.compute_all_with_fft();
        for (k, d) in direct_values.iter().enumerate() {
            assert!(
                (with_fft.at(k) - d).abs() < 1e-13 * direct_values[0].abs(),
                "lag {k}"
            );
        }
        // Asking beyond the direct lags switches to the FFT for all of them.
        assert!((direct.at(n - 1) - with_fft.at(n - 1)).abs() < 1e-13 * direct_values[0].abs());
    }
}
