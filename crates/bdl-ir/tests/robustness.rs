//! The front end never panics, never hangs, and locates every problem: the bundled models are
//! mutated (bytes flipped, ranges deleted, pieces of other models spliced in) and random bytes
//! are fed to parsing, checking and rendering. 10,000 cases run in the normal test run; the
//! ignored `long_fuzz_campaign` runs as many as `BDL_FUZZ_CASES` asks for (see
//! docs/dev/testing.md for the recorded figure).

use bdl_diagnostics::{render, SourceMap};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const MODELS: [&str; 8] = [
    include_str!("../../../models/bayes_by_backprop.bdl"),
    include_str!("../../../models/bayes_linreg.bdl"),
    include_str!("../../../models/eight_schools.bdl"),
    include_str!("../../../models/iris_bnn.bdl"),
    include_str!("../../../models/logistic.bdl"),
    include_str!("../../../models/poly_regression.bdl"),
    include_str!("../../../models/shallow_bnn.bdl"),
    include_str!("../../../models/sine_bnn.bdl"),
];

/// Parses, checks and renders `bytes`, asserting that every diagnostic is located.
fn front_end(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut sources = SourceMap::new();
    let (_, parsed) = bdl_syntax::parse_bytes(&mut sources, "fuzz.bdl", bytes);
    let checked = bdl_ir::check(&parsed.program);
    for diagnostic in parsed.diagnostics.iter().chain(&checked.diagnostics) {
        let location = diagnostic.location(&sources);
        prop_assert!(location.is_some(), "unlocated: {diagnostic:?}");
        let text = render(diagnostic, &sources, false);
        prop_assert!(text.contains(&diagnostic.code));
    }
    Ok(())
}

/// One way to damage a model.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Delete {
        at: usize,
        length: usize,
    },
    Splice {
        at: usize,
        donor: usize,
        from: usize,
        length: usize,
    },
    Insert {
        at: usize,
        byte: u8,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), 1usize..40).prop_map(|(at, length)| Mutation::Delete { at, length }),
        (any::<usize>(), 0..MODELS.len(), any::<usize>(), 1usize..80).prop_map(
            |(at, donor, from, length)| Mutation::Splice {
                at,
                donor,
                from,
                length
            }
        ),
        (
            any::<usize>(),
            prop::sample::select(b"(){}[]\"/*,;=:.\n0e-@^".to_vec())
        )
            .prop_map(|(at, byte)| Mutation::Insert { at, byte }),
    ]
}

fn apply(model: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = model.to_vec();
    for mutation in mutations {
        let length = bytes.len().max(1);
        match *mutation {
            Mutation::Flip { at, mask } => {
                if let Some(byte) = bytes.get_mut(at % length) {
                    *byte ^= mask;
                }
            }
            Mutation::Delete { at, length: count } => {
                let start = (at % length).min(bytes.len());
                let end = (start + count).min(bytes.len());
                bytes.drain(start..end);
            }
            Mutation::Splice {
                at,
                donor,
                from,
                length: count,
            } => {
                let donor = MODELS[donor].as_bytes();
                let start = from % donor.len();
                let end = (start + count).min(donor.len());
                let at = (at % length).min(bytes.len());
                bytes.splice(at..at, donor[start..end].iter().copied());
            }
            Mutation::Insert { at, byte } => {
                let at = (at % length).min(bytes.len());
                bytes.insert(at, byte);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 7_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_models_never_panic_and_every_error_is_located(
        model in 0..MODELS.len(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        front_end(&apply(MODELS[model].as_bytes(), &mutations))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_every_error_is_located(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        front_end(&bytes)?;
    }
}

#[test]
fn the_bundled_models_are_clean() {
    for model in MODELS {
        let mut sources = SourceMap::new();
        let (_, parsed) = bdl_syntax::parse_bytes(&mut sources, "model.bdl", model.as_bytes());
        let checked = bdl_ir::check(&parsed.program);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    }
}

/// The number of cases the long campaign runs: `BDL_FUZZ_CASES`, or one million.
fn campaign_cases() -> u32 {
    std::env::var("BDL_FUZZ_CASES")
        .ok()
        .and_then(|text| text.trim().replace('_', "").parse().ok())
        .unwrap_or(1_000_000)
}

/// Runs both strategies for `BDL_FUZZ_CASES` cases in all (70% mutated models, 30% random
/// bytes) and prints the count and the time taken, so the figure in docs/dev/testing.md can be
/// reproduced.
#[test]
#[ignore = "slow statistical suite: the long fuzz campaign (about 10^6 cases) takes minutes"]
fn long_fuzz_campaign() {
    let cases = campaign_cases();
    let mutated_cases = cases / 10 * 7;
    let random_cases = cases - mutated_cases;
    let started = std::time::Instant::now();
    let config = |cases| Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mutated = (0..MODELS.len(), prop::collection::vec(mutation(), 1..4));
    TestRunner::new(config(mutated_cases))
        .run(&mutated, |(model, mutations)| {
            front_end(&apply(MODELS[model].as_bytes(), &mutations))
        })
        .expect("a mutated model broke the front end");
    let random = prop::collection::vec(any::<u8>(), 0..300);
    TestRunner::new(config(random_cases))
        .run(&random, |bytes| front_end(&bytes))
        .expect("random bytes broke the front end");
    let report = format!(
        "fuzz campaign: {cases} cases ({mutated_cases} mutated models, {random_cases} random \
         inputs) in {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
    // The figure is this test's output, read by whoever runs the campaign.
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
}
