//! Every bundled model's log density at a fixed unconstrained point equals NumPyro's
//! `-potential_energy` of the same model at the same point (scripts/numpyro_log_density.py).
#![allow(clippy::disallowed_methods)] // Tests read the reference file.

mod common;

use bdl_infer::density::LogDensity;
use serde_json::Value;

#[test]
fn log_densities_equal_numpyro() {
    let reference: Value =
        serde_json::from_str(include_str!("data/numpyro_log_density.json")).unwrap();
    let models = reference["models"].as_object().unwrap();
    assert_eq!(models.len(), 12);
    for (name, expected) in models {
        let model = common::load_model(&format!("{name}.bdl"));
        let mut position = vec![0.0; model.layout.latent_dim()];
        for site in expected["sites"].as_array().unwrap() {
            let site_name = site["name"].as_str().unwrap();
            let index = model
                .layout
                .find(site_name)
                .unwrap_or_else(|| panic!("{name}: no site {site_name}"));
            let entry = &model.layout.entries[index];
            let values: Vec<f64> = site["unconstrained"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(entry.len(), values.len(), "{name}: size of {site_name}");
            position[entry.offset..entry.offset + entry.len()].copy_from_slice(&values);
        }
        let mut density = model.log_density();
        let mut gradient = vec![0.0; position.len()];
        let value = density
            .log_density_gradient(&position, &mut gradient)
            .unwrap();
        let want = expected["log_density"].as_f64().unwrap();
        let relative = (value - want).abs() / want.abs().max(1.0);
        assert!(
            relative < 1e-10,
            "{name}: bdl {value} vs NumPyro {want} (relative {relative:e})"
        );
    }
}
