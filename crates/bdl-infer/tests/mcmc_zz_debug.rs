#![allow(clippy::print_stderr, clippy::disallowed_methods)]
mod mcmc_support;
use bdl_infer::mcmc::*;
use std::sync::atomic::AtomicBool;
#[test]
fn debug() {
    let g = mcmc_support::Gaussian { mean: vec![-2.0 / 2.04, 4.0 / 8.04], precision: vec![2.04, 0.0, 0.0, 8.04] };
    let settings = McmcSettings { seed: 16, algorithm: Algorithm::Hmc(HmcLength::Steps(3)), ..McmcSettings::default() };
    let r = sample(&settings, |_| g.clone(), &|_| {}, &AtomicBool::new(false)).unwrap();
    let v: Vec<Vec<Vec<f64>>> = (0..2).map(|d| r.chains.iter().map(|c| c.coordinate(d)).collect()).collect();
    std::fs::write("/tmp/dbg/chains.json", serde_json::to_string(&v).unwrap()).unwrap();
}
