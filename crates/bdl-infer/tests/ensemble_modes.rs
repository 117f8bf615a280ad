//! Deep ensembles: members started from different random points reach the different modes of a
//! bimodal posterior, each member's loss is −log p at its position, and results do not depend on
//! the number of threads.

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint};
use bdl_infer::driver::{Phase, Progress};
use bdl_infer::ensemble::{
    fit, EnsembleError, EnsembleResult, EnsembleSettings, MemberInit, SwagSettings,
};
use bdl_infer::rng::Rng;
use bdl_infer::vi::{
    Adam, LearningRateSchedule, OptimizerKind, OptimizerSettings, Sgd, SviSettings,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// An equal mixture of N(−3, 0.5²) and N(3, 0.5²) over the latent z, with a `param` coordinate
/// θ under a N(1, 1) "prior" so that params are fitted too.
#[derive(Clone)]
struct TwoModes;

impl TwoModes {
    const CENTRE: f64 = 3.0;
    const SD: f64 = 0.5;

    fn log_density(z: f64) -> (f64, f64) {
        // log p = logsumexp(a, b) − log 2 with a, b the component log-densities; the gradient is
        // the responsibility-weighted sum of the components' gradients −(z − c)/s².
        let s2 = Self::SD * Self::SD;
        let a = -Self::SD.ln() - HALF_LOG_TWO_PI - (z + Self::CENTRE).powi(2) / (2.0 * s2);
        let b = -Self::SD.ln() - HALF_LOG_TWO_PI - (z - Self::CENTRE).powi(2) / (2.0 * s2);
        let top = a.max(b);
        let log_sum = top + ((a - top).exp() + (b - top).exp()).ln();
        let weight_a = (a - log_sum).exp();
        let weight_b = (b - log_sum).exp();
        let gradient =
            weight_a * (-(z + Self::CENTRE) / s2) + weight_b * (-(z - Self::CENTRE) / s2);
        (log_sum - std::f64::consts::LN_2, gradient)
    }
}

impl ElboModel for TwoModes {
    fn latent_dim(&self) -> usize {
        1
    }

    fn param_dim(&self) -> usize {
        1
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        _options: &JointOptions,
        _rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let (prior, slope) = TwoModes::log_density(position[0]);
        let theta = position[1];
        gradient[0] = slope;
        gradient[1] = -(theta - 1.0);
        Ok(LogJoint {
            likelihood: -HALF_LOG_TWO_PI - 0.5 * (theta - 1.0) * (theta - 1.0),
            prior,
        })
    }
}

fn settings(members: usize, seed: u64) -> EnsembleSettings {
    EnsembleSettings {
        members,
        seed,
        first_member: 0,
        map: SviSettings {
            steps: 3000,
            optimizer: OptimizerSettings {
                kind: OptimizerKind::Adam(Adam {
                    learning_rate: 0.1,
                    ..Adam::default()
                }),
                schedule: LearningRateSchedule::Exponential {
                    gamma: 0.01f64.powf(1.0 / 3000.0),
                },
                max_gradient_norm: None,
            },
            ..SviSettings::default()
        },
        init: MemberInit::Uniform { radius: 6.0 },
        swag: None,
        parallel: true,
    }
}

fn run(settings: &EnsembleSettings) -> EnsembleResult {
    fit(settings, |_| TwoModes, &|_| {}, &AtomicBool::new(false)).expect("the fit succeeds")
}

#[test]
fn members_find_both_modes_of_a_bimodal_posterior() {
    let result = run(&settings(8, 3));
    assert_eq!(result.members.len(), 8);
    assert_eq!(result.dim, 2);
    let mut signs = [0, 0];
    for member in &result.members {
        let z = member.position[0];
        // The modes of the mixture sit at ±3 up to a shift of order e^(−72) from the other
        // component.
        assert!(
            (z.abs() - TwoModes::CENTRE).abs() < 1e-3,
            "member {} stopped at {z}",
            member.member
        );
        assert!(
            (member.position[1] - 1.0).abs() < 1e-3,
            "{:?}",
            member.position
        );
        signs[usize::from(z > 0.0)] += 1;
        let (log_prior, _) = TwoModes::log_density(z);
        let theta = member.position[1];
        let log_likelihood = -HALF_LOG_TWO_PI - 0.5 * (theta - 1.0) * (theta - 1.0);
        assert!((member.final_loss + log_prior + log_likelihood).abs() < 1e-12);
        assert!(!member.losses.is_empty() && !member.interrupted);
        assert!(member.swag.is_none() && member.swag_draws.is_empty());
    }
    assert!(signs[0] > 0 && signs[1] > 0, "modes found: {signs:?}");
    // The draws are the members' positions, row after row.
    let draws = result.draws();
    assert_eq!(draws.len(), 16);
    assert_eq!(draws[2..4], result.members[1].position[..]);
}

#[test]
fn ensembles_are_bit_identical_with_one_and_two_threads() {
    let settings = EnsembleSettings {
        swag: Some(SwagSettings {
            steps: 200,
            collect_every: 10,
            rank: 5,
            draws: 7,
            optimizer: OptimizerSettings {
                kind: OptimizerKind::Sgd(Sgd {
                    learning_rate: 0.01,
                    ..Sgd::default()
                }),
                ..OptimizerSettings::default()
            },
        }),
        ..settings(5, 9)
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(|| run(&settings))
    };
    let one = in_pool(1);
    let two = in_pool(2);
    let sequential = run(&EnsembleSettings {
        parallel: false,
        ..settings.clone()
    });
    let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
    assert_eq!(bits(one.draws()), bits(two.draws()));
    assert_eq!(bits(one.draws()), bits(sequential.draws()));
    assert_eq!(bits(one.swag_draws()), bits(two.swag_draws()));
    assert_eq!(one.swag_draws().len(), 5 * 7 * 2);
    // Members start from different points, and another seed moves them.
    let reseeded = run(&EnsembleSettings {
        seed: 10,
        ..settings.clone()
    });
    assert_ne!(bits(reseeded.swag_draws()), bits(one.swag_draws()));
}

#[test]
fn given_initial_positions_choose_the_modes() {
    let starts = vec![vec![-1.0, 0.0], vec![0.5, 0.0], vec![-0.2, 4.0]];
    let result = run(&EnsembleSettings {
        init: MemberInit::Positions(starts),
        ..settings(3, 0)
    });
    let modes: Vec<f64> = result.members.iter().map(|m| m.position[0]).collect();
    for (mode, expected) in modes.iter().zip([-3.0, 3.0, -3.0]) {
        assert!((mode - expected).abs() < 1e-3, "{modes:?}");
    }
}

#[test]
fn the_callback_sees_every_step_and_the_stop_flag_skips_later_members() {
    let settings = EnsembleSettings {
        parallel: false,
        ..settings(4, 1)
    };
    let steps = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let result = fit(
        &settings,
        |_| TwoModes,
        &|event: &Progress| {
            assert_eq!(event.phase, Phase::Fitting);
            assert!(event.loss.is_some_and(f64::is_finite));
            if steps.fetch_add(1, Ordering::SeqCst) + 1 == 3000 + 100 {
                stop.store(true, Ordering::SeqCst);
            }
        },
        &stop,
    )
    .unwrap();
    assert!(result.interrupted);
    assert_eq!(result.members.len(), 2);
    assert!(!result.members[0].interrupted);
    assert!(result.members[1].interrupted);
    assert_eq!(result.members[1].losses.len(), 100);
}

#[test]
fn invalid_settings_are_reported() {
    let check = |settings: EnsembleSettings, needle: &str| {
        let error = fit(&settings, |_| TwoModes, &|_| {}, &AtomicBool::new(false)).unwrap_err();
        assert!(
            matches!(&error, EnsembleError::InvalidSettings { message } if message.contains(needle)),
            "{error} should mention {needle}"
        );
    };
    check(settings(0, 0), "member");
    check(
        EnsembleSettings {
            init: MemberInit::Positions(vec![vec![0.0, 0.0]]),
            ..settings(2, 0)
        },
        "one per member",
    );
    check(
        EnsembleSettings {
            init: MemberInit::Positions(vec![vec![0.0], vec![0.0]]),
            ..settings(2, 0)
        },
        "coordinates",
    );
    check(
        EnsembleSettings {
            swag: Some(SwagSettings {
                optimizer: OptimizerSettings {
                    schedule: LearningRateSchedule::Exponential { gamma: 0.99 },
                    ..OptimizerSettings::default()
                },
                ..SwagSettings::default()
            }),
            ..settings(2, 0)
        },
        "constant",
    );
    check(
        EnsembleSettings {
            swag: Some(SwagSettings {
                steps: 5,
                collect_every: 10,
                ..SwagSettings::default()
            }),
            ..settings(2, 0)
        },
        "no iterate",
    );
}

/// A sink that records every call, per unit, for the streaming tests.
#[derive(Default)]
struct Recorder {
    calls: std::sync::Mutex<Vec<(usize, String, Vec<f64>)>>,
}

impl bdl_infer::driver::DrawSink for Recorder {
    fn header(&self, unit: usize, _dim: usize) -> Result<(), bdl_infer::driver::SinkFailed> {
        self.calls
            .lock()
            .unwrap()
            .push((unit, "header".into(), Vec::new()));
        Ok(())
    }

    fn draw(
        &self,
        unit: usize,
        row: usize,
        position: &[f64],
        stats: &bdl_infer::driver::DrawStats,
    ) -> Result<(), bdl_infer::driver::SinkFailed> {
        let label = format!("draw {row} {}", stats.sampler);
        self.calls
            .lock()
            .unwrap()
            .push((unit, label, position.to_vec()));
        Ok(())
    }

    fn comment(&self, _unit: usize, _line: &str) -> Result<(), bdl_infer::driver::SinkFailed> {
        Ok(())
    }

    fn finish(&self, unit: usize, _interrupted: bool) -> Result<(), bdl_infer::driver::SinkFailed> {
        self.calls
            .lock()
            .unwrap()
            .push((unit, "finish".into(), Vec::new()));
        Ok(())
    }
}

/// Each member streams its draws to the sink (its position, or its SWAG draws), header first
/// and finish last, and the sink sees exactly the result's draws; streaming changes no draw.
#[test]
fn members_stream_their_draws_to_the_sink_as_the_result_holds_them() {
    let swag = SwagSettings {
        steps: 60,
        collect_every: 10,
        rank: 3,
        draws: 4,
        optimizer: OptimizerSettings {
            kind: OptimizerKind::Sgd(Sgd {
                learning_rate: 0.01,
                ..Sgd::default()
            }),
            ..OptimizerSettings::default()
        },
    };
    let mut plain = settings(3, 5);
    plain.map.steps = 200;
    let multiswag = EnsembleSettings {
        swag: Some(swag),
        ..plain.clone()
    };
    for settings in [plain, multiswag] {
        let recorder = Recorder::default();
        let stop = AtomicBool::new(false);
        let streamed =
            bdl_infer::ensemble::fit_into(&settings, |_| TwoModes, &|_| {}, &recorder, &stop)
                .expect("the fit succeeds");
        let calls = recorder.calls.into_inner().unwrap();
        let swag = settings.swag.is_some();
        let sampler = if swag { "multiswag" } else { "ensemble" };
        for member in &streamed.members {
            let mine: Vec<_> = calls.iter().filter(|c| c.0 == member.member).collect();
            let expected: Vec<Vec<f64>> = if swag {
                member.swag_draws.clone()
            } else {
                vec![member.position.clone()]
            };
            assert_eq!(mine.len(), expected.len() + 2, "member {}", member.member);
            assert_eq!(mine[0].1, "header");
            assert_eq!(mine[mine.len() - 1].1, "finish");
            for (row, (call, draw)) in mine[1..mine.len() - 1].iter().zip(&expected).enumerate() {
                assert_eq!(call.1, format!("draw {row} {sampler}"));
                assert_eq!(&call.2, draw);
            }
        }
        let batch = run(&settings);
        let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(batch.draws()), bits(streamed.draws()));
        assert_eq!(bits(batch.swag_draws()), bits(streamed.swag_draws()));
    }
}
