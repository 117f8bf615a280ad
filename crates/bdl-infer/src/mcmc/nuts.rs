//! The No-U-Turn Sampler with multinomial sampling, as Stan implements it.
//!
//! A transition draws a momentum and doubles a trajectory in random directions until it turns
//! back on itself or reaches the maximum depth. Each doubling builds a subtree recursively; points
//! are weighted by exp(H₀ − H), a subtree's proposal is drawn multinomially within it, and the
//! top level moves to a new subtree's proposal with probability min(1, w_new / w_old) (biased
//! progressive sampling). The generalised no-U-turn criterion p♯₋·ρ > 0 and p♯₊·ρ > 0 (ρ the sum
//! of momenta, p♯ = M⁻¹p at the ends) is checked on every merged subtree and, as current Stan
//! does, also across the seam of two merged subtrees (each half extended by the nearest point of
//! the other). A leapfrog step whose energy error exceeds the limit, or whose density is not finite,
//! is a divergence: the subtree is discarded and the transition ends with the last valid proposal.
//!
//! All vectors live in a workspace allocated once per chain; one level of scratch per tree
//! depth is added the first time a trajectory reaches that depth, so no leapfrog step and no tree
//! node allocates.

use super::integrator::{leapfrog, PhasePoint};
use super::metric::{dot, Metric};
use super::Transition;
use crate::density::{LogDensity, LogDensityError};
use crate::rng::Rng;
use rand::Rng as _;

/// Scratch vectors of one tree level: the locals of a node at that depth.
#[derive(Debug)]
struct Level {
    z_propose_final: PhasePoint,
    p_init_end: Vec<f64>,
    p_sharp_init_end: Vec<f64>,
    rho_init: Vec<f64>,
    p_final_beg: Vec<f64>,
    p_sharp_final_beg: Vec<f64>,
    rho_final: Vec<f64>,
}

impl Level {
    fn new(dim: usize) -> Level {
        Level {
            z_propose_final: PhasePoint::new(dim),
            p_init_end: vec![0.0; dim],
            p_sharp_init_end: vec![0.0; dim],
            rho_init: vec![0.0; dim],
            p_final_beg: vec![0.0; dim],
            p_sharp_final_beg: vec![0.0; dim],
            rho_final: vec![0.0; dim],
        }
    }
}

/// Every buffer a NUTS transition needs, kept between transitions.
#[derive(Debug)]
pub(crate) struct NutsWorkspace {
    dim: usize,
    z_fwd: PhasePoint,
    z_bck: PhasePoint,
    z_sample: PhasePoint,
    z_propose: PhasePoint,
    p_fwd_fwd: Vec<f64>,
    p_sharp_fwd_fwd: Vec<f64>,
    p_fwd_bck: Vec<f64>,
    p_sharp_fwd_bck: Vec<f64>,
    p_bck_fwd: Vec<f64>,
    p_sharp_bck_fwd: Vec<f64>,
    p_bck_bck: Vec<f64>,
    p_sharp_bck_bck: Vec<f64>,
    rho: Vec<f64>,
    rho_fwd: Vec<f64>,
    rho_bck: Vec<f64>,
    levels: Vec<Level>,
}

impl NutsWorkspace {
    pub(crate) fn new(dim: usize) -> NutsWorkspace {
        let vector = || vec![0.0; dim];
        NutsWorkspace {
            dim,
            z_fwd: PhasePoint::new(dim),
            z_bck: PhasePoint::new(dim),
            z_sample: PhasePoint::new(dim),
            z_propose: PhasePoint::new(dim),
            p_fwd_fwd: vector(),
            p_sharp_fwd_fwd: vector(),
            p_fwd_bck: vector(),
            p_sharp_fwd_bck: vector(),
            p_bck_fwd: vector(),
            p_sharp_bck_fwd: vector(),
            p_bck_bck: vector(),
            p_sharp_bck_bck: vector(),
            rho: vector(),
            rho_fwd: vector(),
            rho_bck: vector(),
            levels: Vec::new(),
        }
    }
}

/// The outputs a subtree writes about its two ends, as in Stan's `build_tree`: the momenta and
/// sharp momenta at its first (`beg`) and last (`end`) points in the direction of integration,
/// and `rho`, which it sets to the sum of its momenta.
struct Ends<'a> {
    p_sharp_beg: &'a mut [f64],
    p_sharp_end: &'a mut [f64],
    rho: &'a mut [f64],
    p_beg: &'a mut [f64],
    p_end: &'a mut [f64],
}

/// What stays fixed or accumulates over one transition.
struct Tree<'a, D: ?Sized> {
    density: &'a mut D,
    metric: &'a Metric,
    rng: &'a mut Rng,
    /// Signed: positive when extending forward in time.
    step_size: f64,
    h0: f64,
    max_energy_error: f64,
    n_leapfrog: u32,
    sum_metro_prob: f64,
    divergent: bool,
}

/// log(exp(a) + exp(b)) without overflow; −∞ is the identity.
#[inline]
pub(crate) fn log_sum_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    if a > b {
        a + (b - a).exp().ln_1p()
    } else {
        b + (a - b).exp().ln_1p()
    }
}

/// Merges the log weights of two halves: returns log(w_a + w_b) and the share w_b / (w_a + w_b),
/// with one exponential and one logarithm.
#[inline]
fn merge_log_weights(log_a: f64, log_b: f64) -> (f64, f64) {
    if log_b == f64::NEG_INFINITY {
        return (log_a, 0.0);
    }
    if log_a == f64::NEG_INFINITY {
        return (log_b, 1.0);
    }
    if log_a >= log_b {
        let ratio = (log_b - log_a).exp();
        (log_a + ratio.ln_1p(), ratio / (1.0 + ratio))
    } else {
        let ratio = (log_a - log_b).exp();
        (log_b + ratio.ln_1p(), 1.0 / (1.0 + ratio))
    }
}

/// The generalised no-U-turn criterion: both ends still move along the summed momentum.
#[inline]
fn no_u_turn(p_sharp_minus: &[f64], p_sharp_plus: &[f64], rho: &[f64]) -> bool {
    dot(p_sharp_plus, rho) > 0.0 && dot(p_sharp_minus, rho) > 0.0
}

/// The criterion with ρ = `rho_a + rho_b`, without forming the sum in memory. Four partial sums
/// per product keep the additions independent, as in [`dot`].
#[inline]
fn no_u_turn_sum(
    p_sharp_minus: &[f64],
    p_sharp_plus: &[f64],
    rho_a: &[f64],
    rho_b: &[f64],
) -> bool {
    let n = rho_a.len();
    let (a, b, sp, sm) = (
        &rho_a[..n],
        &rho_b[..n],
        &p_sharp_plus[..n],
        &p_sharp_minus[..n],
    );
    let body = n - n % 4;
    let mut plus = [0.0; 4];
    let mut minus = [0.0; 4];
    let mut i = 0;
    while i < body {
        for k in 0..4 {
            let r = a[i + k] + b[i + k];
            plus[k] += sp[i + k] * r;
            minus[k] += sm[i + k] * r;
        }
        i += 4;
    }
    let mut plus = (plus[0] + plus[1]) + (plus[2] + plus[3]);
    let mut minus = (minus[0] + minus[1]) + (minus[2] + minus[3]);
    for j in body..n {
        let r = a[j] + b[j];
        plus += sp[j] * r;
        minus += sm[j] * r;
    }
    plus > 0.0 && minus > 0.0
}

/// Writes `a + b` into `target`.
#[inline]
fn sum_into(target: &mut [f64], a: &[f64], b: &[f64]) {
    for ((t, x), y) in target.iter_mut().zip(a).zip(b) {
        *t = x + y;
    }
}

impl<D: LogDensity + ?Sized> Tree<'_, D> {
    /// Builds a subtree of 2^depth leapfrog steps from `z` (which moves along) and returns whether
    /// it is valid: no divergence and no U-turn inside it. `levels` holds at least `depth` levels
    /// of scratch; the node uses the last one and hands the rest to its children.
    fn build(
        &mut self,
        depth: usize,
        z: &mut PhasePoint,
        z_propose: &mut PhasePoint,
        ends: Ends<'_>,
        levels: &mut [Level],
        log_sum_weight: &mut f64,
    ) -> Result<bool, LogDensityError> {
        if depth == 0 {
            return self.leaf(z, z_propose, ends, log_sum_weight);
        }
        let (level, lower) = match levels[..depth].split_last_mut() {
            Some(split) => split,
            None => return Ok(false),
        };

        // The initial half: its first point is this subtree's first point.
        let mut log_sum_weight_init = f64::NEG_INFINITY;
        let valid_init = self.build(
            depth - 1,
            z,
            z_propose,
            Ends {
                p_sharp_beg: &mut *ends.p_sharp_beg,
                p_sharp_end: &mut level.p_sharp_init_end,
                rho: &mut level.rho_init,
                p_beg: &mut *ends.p_beg,
                p_end: &mut level.p_init_end,
            },
            lower,
            &mut log_sum_weight_init,
        )?;
        if !valid_init {
            return Ok(false);
        }

        // The final half: its last point is this subtree's last point.
        let mut log_sum_weight_final = f64::NEG_INFINITY;
        let valid_final = self.build(
            depth - 1,
            z,
            &mut level.z_propose_final,
            Ends {
                p_sharp_beg: &mut level.p_sharp_final_beg,
                p_sharp_end: &mut *ends.p_sharp_end,
                rho: &mut level.rho_final,
                p_beg: &mut level.p_final_beg,
                p_end: &mut *ends.p_end,
            },
            lower,
            &mut log_sum_weight_final,
        )?;
        if !valid_final {
            return Ok(false);
        }

        // Multinomial sampling between the halves: move to the final half's proposal with
        // probability w_final / (w_init + w_final).
        let (log_sum_weight_subtree, final_share) =
            merge_log_weights(log_sum_weight_init, log_sum_weight_final);
        *log_sum_weight = log_sum_exp(*log_sum_weight, log_sum_weight_subtree);
        if self.rng.random::<f64>() < final_share {
            z_propose.copy_sample_from(&level.z_propose_final);
        }

        // ρ of the subtree is the sum of both halves; the criterion must hold across it...
        sum_into(ends.rho, &level.rho_init, &level.rho_final);
        let across = no_u_turn(ends.p_sharp_beg, ends.p_sharp_end, ends.rho);
        // ...and across the seam: the initial half extended by the final half's first point, and
        // the final half extended by the initial half's last point.
        let initial_extended = no_u_turn_sum(
            ends.p_sharp_beg,
            &level.p_sharp_final_beg,
            &level.rho_init,
            &level.p_final_beg,
        );
        let final_extended = no_u_turn_sum(
            &level.p_sharp_init_end,
            ends.p_sharp_end,
            &level.rho_final,
            &level.p_init_end,
        );
        let persist = across && initial_extended && final_extended;
        Ok(persist)
    }

    /// A subtree of one leapfrog step.
    #[inline]
    fn leaf(
        &mut self,
        z: &mut PhasePoint,
        z_propose: &mut PhasePoint,
        ends: Ends<'_>,
        log_sum_weight: &mut f64,
    ) -> Result<bool, LogDensityError> {
        let valid = leapfrog(&mut *self.density, self.metric, z, self.step_size)?;
        self.n_leapfrog += 1;
        let mut h = if valid {
            z.hamiltonian()
        } else {
            f64::INFINITY
        };
        if h.is_nan() {
            h = f64::INFINITY;
        }
        if h - self.h0 > self.max_energy_error {
            self.divergent = true;
        }
        // The point's weight relative to the initial point is exp(H₀ − H).
        *log_sum_weight = log_sum_exp(*log_sum_weight, self.h0 - h);
        self.sum_metro_prob += if self.h0 - h > 0.0 {
            1.0
        } else {
            (self.h0 - h).exp()
        };
        if self.divergent {
            return Ok(false);
        }
        z_propose.copy_sample_from(z);
        ends.p_sharp_beg.copy_from_slice(&z.velocity);
        ends.p_sharp_end.copy_from_slice(&z.velocity);
        ends.rho.copy_from_slice(&z.momentum);
        ends.p_beg.copy_from_slice(&z.momentum);
        ends.p_end.copy_from_slice(&z.momentum);
        Ok(true)
    }
}

/// One NUTS transition from `current`, which must hold a valid position, gradient and log
/// density. On return `current` is the sampled point with the momentum it was reached with.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transition<D: LogDensity + ?Sized>(
    density: &mut D,
    metric: &Metric,
    rng: &mut Rng,
    step_size: f64,
    max_depth: usize,
    max_energy_error: f64,
    current: &mut PhasePoint,
    workspace: &mut NutsWorkspace,
) -> Result<Transition, LogDensityError> {
    let dim = workspace.dim;
    metric.sample_momentum(rng, &mut current.momentum);
    current.refresh_kinetic(metric);
    let h0 = current.hamiltonian();

    let ws = workspace;
    ws.z_fwd.copy_from(current);
    ws.z_bck.copy_from(current);
    ws.z_sample.copy_from(current);
    for target in [
        &mut ws.p_fwd_fwd,
        &mut ws.p_fwd_bck,
        &mut ws.p_bck_fwd,
        &mut ws.p_bck_bck,
        &mut ws.rho,
    ] {
        target.copy_from_slice(&current.momentum);
    }
    for target in [
        &mut ws.p_sharp_fwd_fwd,
        &mut ws.p_sharp_fwd_bck,
        &mut ws.p_sharp_bck_fwd,
        &mut ws.p_sharp_bck_bck,
    ] {
        target.copy_from_slice(&current.velocity);
    }

    let mut tree = Tree {
        density,
        metric,
        rng,
        step_size,
        h0,
        max_energy_error,
        n_leapfrog: 0,
        sum_metro_prob: 0.0,
        divergent: false,
    };
    // The weight of the initial point is exp(H₀ − H₀) = 1.
    let mut log_sum_weight = 0.0;
    let mut depth = 0;

    while depth < max_depth {
        while ws.levels.len() < depth {
            ws.levels.push(Level::new(dim));
        }
        let mut log_sum_weight_subtree = f64::NEG_INFINITY;

        let valid_subtree = if tree.rng.random::<f64>() > 0.5 {
            // Extend forward: the old trajectory becomes the backward part.
            ws.rho_bck.copy_from_slice(&ws.rho);
            ws.p_bck_fwd.copy_from_slice(&ws.p_fwd_fwd);
            ws.p_sharp_bck_fwd.copy_from_slice(&ws.p_sharp_fwd_fwd);
            tree.step_size = step_size;
            tree.build(
                depth,
                &mut ws.z_fwd,
                &mut ws.z_propose,
                Ends {
                    p_sharp_beg: &mut ws.p_sharp_fwd_bck,
                    p_sharp_end: &mut ws.p_sharp_fwd_fwd,
                    rho: &mut ws.rho_fwd,
                    p_beg: &mut ws.p_fwd_bck,
                    p_end: &mut ws.p_fwd_fwd,
                },
                &mut ws.levels,
                &mut log_sum_weight_subtree,
            )?
        } else {
            // Extend backward: the old trajectory becomes the forward part.
            ws.rho_fwd.copy_from_slice(&ws.rho);
            ws.p_fwd_bck.copy_from_slice(&ws.p_bck_bck);
            ws.p_sharp_fwd_bck.copy_from_slice(&ws.p_sharp_bck_bck);
            tree.step_size = -step_size;
            tree.build(
                depth,
                &mut ws.z_bck,
                &mut ws.z_propose,
                Ends {
                    p_sharp_beg: &mut ws.p_sharp_bck_fwd,
                    p_sharp_end: &mut ws.p_sharp_bck_bck,
                    rho: &mut ws.rho_bck,
                    p_beg: &mut ws.p_bck_fwd,
                    p_end: &mut ws.p_bck_bck,
                },
                &mut ws.levels,
                &mut log_sum_weight_subtree,
            )?
        };
        if !valid_subtree {
            break;
        }
        depth += 1;

        // Biased progressive sampling: prefer the new subtree when it carries more weight.
        if log_sum_weight_subtree > log_sum_weight {
            ws.z_sample.copy_sample_from(&ws.z_propose);
        } else {
            let accept_prob = (log_sum_weight_subtree - log_sum_weight).exp();
            if tree.rng.random::<f64>() < accept_prob {
                ws.z_sample.copy_sample_from(&ws.z_propose);
            }
        }
        log_sum_weight = log_sum_exp(log_sum_weight, log_sum_weight_subtree);

        sum_into(&mut ws.rho, &ws.rho_bck, &ws.rho_fwd);
        let persist = no_u_turn(&ws.p_sharp_bck_bck, &ws.p_sharp_fwd_fwd, &ws.rho)
            & no_u_turn_sum(
                &ws.p_sharp_bck_bck,
                &ws.p_sharp_fwd_bck,
                &ws.rho_bck,
                &ws.p_fwd_bck,
            )
            & no_u_turn_sum(
                &ws.p_sharp_bck_fwd,
                &ws.p_sharp_fwd_fwd,
                &ws.rho_fwd,
                &ws.p_bck_fwd,
            );
        if !persist {
            break;
        }
    }

    let n_leapfrog = tree.n_leapfrog;
    // The average acceptance probability over every step, rejected subtrees included.
    let accept_stat = tree.sum_metro_prob / f64::from(n_leapfrog.max(1));
    let divergent = tree.divergent;
    current.copy_sample_from(&ws.z_sample);
    Ok(Transition {
        accept_stat,
        tree_depth: depth as u32,
        n_leapfrog,
        divergent,
        energy: current.hamiltonian(),
    })
}
