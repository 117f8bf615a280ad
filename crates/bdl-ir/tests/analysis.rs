//! What `check` records for lowering: resolved names, static shapes and matched calls, on the
//! bundled models.

use bdl_diagnostics::FileId;
use bdl_ir::types::{Dim, Shape, Ty};
use bdl_ir::{check, BindingKind, Reference};
use bdl_syntax::{parse, Item, StmtKind};

fn size(name: &str) -> Dim {
    Dim::Size(name.to_string())
}

/// The static type of the `let` named `name` in the model (searched one plate deep too).
fn let_type(source: &str, name: &str) -> Ty {
    let parsed = parse(FileId(0), source);
    let checked = check(&parsed.program);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let mut stmts: Vec<&bdl_syntax::Stmt> = Vec::new();
    for item in &parsed.program.items {
        if let Item::Model(model) = item {
            for stmt in &model.body.stmts {
                stmts.push(stmt);
                if let StmtKind::Plate(plate) = &stmt.kind {
                    stmts.extend(plate.body.stmts.iter());
                }
            }
        }
    }
    let binding = stmts
        .iter()
        .find_map(|stmt| match &stmt.kind {
            StmtKind::Let(binding) if binding.name.name == name => Some(binding),
            _ => None,
        })
        .expect("the let exists");
    let id = checked.analysis.definitions[&binding.name.id];
    let info = checked.analysis.binding(id).expect("a binding");
    assert_eq!(info.kind, BindingKind::Let);
    checked.analysis.exprs[binding.value.id.index()].ty.clone()
}

#[test]
fn eight_schools_theta_has_the_plate_size() {
    let source = include_str!("../../../models/eight_schools.bdl");
    assert_eq!(
        let_type(source, "theta").shape(),
        Shape::Known(vec![size("J")])
    );
    assert_eq!(let_type(source, "mu").shape(), Shape::scalar());
}

#[test]
fn logistic_and_shallow_shapes_follow_matrix_products() {
    let shallow = include_str!("../../../models/shallow_bnn.bdl");
    assert_eq!(
        let_type(shallow, "mu").shape(),
        Shape::Known(vec![size("N")])
    );
    assert_eq!(
        let_type(shallow, "gamma").shape(),
        Shape::Known(vec![Dim::Const(2), Dim::Const(10)])
    );
}

#[test]
fn polynomial_features_are_n_by_ten() {
    let source = include_str!("../../../models/poly_regression.bdl");
    let parsed = parse(FileId(0), source);
    let checked = check(&parsed.program);
    let phi = checked
        .analysis
        .bindings
        .iter()
        .find(|binding| binding.name == "phi")
        .expect("phi is bound");
    assert_eq!(phi.kind, BindingKind::DataLet);
    assert_eq!(
        phi.ty.shape(),
        Shape::Known(vec![size("N"), Dim::Const(10)])
    );
}

#[test]
fn calls_are_matched_to_parameter_names() {
    let source = include_str!("../../../models/iris_bnn.bdl");
    let parsed = parse(FileId(0), source);
    let checked = check(&parsed.program);
    let categorical = checked
        .analysis
        .calls
        .values()
        .find(|call| matches!(call.callee, Reference::Distribution(spec) if spec.name == "Categorical"))
        .expect("the likelihood is resolved");
    let names: Vec<&str> = categorical
        .arguments
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["logits"]);
    let lifted: Vec<String> = checked
        .analysis
        .networks
        .values()
        .flat_map(|n| n.weight_sites("mlp"))
        .collect();
    assert_eq!(
        lifted,
        ["mlp_0_weight", "mlp_0_bias", "mlp_2_weight", "mlp_2_bias"]
    );
    assert!(checked
        .analysis
        .sites
        .iter()
        .any(|site| site.name == "y" && site.plates == ["data"]));
}

/// The diagnostics' codes of a program.
fn codes(source: &str) -> Vec<String> {
    let parsed = parse(FileId(0), source);
    let checked = check(&parsed.program);
    parsed
        .diagnostics
        .iter()
        .chain(&checked.diagnostics)
        .map(|d| d.code.clone())
        .collect()
}

#[test]
fn exclusive_branches_may_share_a_site_name_but_what_follows_may_not() {
    let branches = r#"
        model {
            let w = sample("w", Normal(0, 1))
            if 1 > 0 {
                let z = sample("z", Normal(w, 1))
            } else {
                let z = sample("z", Normal(-w, 1))
            }
        }
    "#;
    assert!(codes(branches).is_empty(), "{:?}", codes(branches));
    let reused_after = r#"
        model {
            if 1 > 0 {
                let z = sample("z", Normal(0, 1))
            }
            let y = sample("z", Normal(0, 2))
        }
    "#;
    assert_eq!(codes(reused_after), vec!["E0304".to_string()]);
}

#[test]
fn data_bounds_may_name_a_declared_integer() {
    let source = r#"
        data {
            K: int<lower=1>
            y: int<lower=0, upper=K>[N]
        }
        model {
            let p = sample("p", Dirichlet(ones([K + 1])))
            plate("data", N) {
                observe("y", Categorical(p), y)
            }
        }
    "#;
    let parsed = parse(FileId(0), source);
    let checked = check(&parsed.program);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let program = bdl_ir::lower(&parsed.program, &checked.analysis).expect("lowers");
    let y = program
        .data
        .iter()
        .find(|decl| decl.name == "y")
        .expect("y");
    assert!(matches!(y.upper, Some(bdl_ir::ir::DataBound::Slot(_))));
    assert_eq!(y.type_text(&program.slots), "int<lower=0, upper=K>[N]");
}
