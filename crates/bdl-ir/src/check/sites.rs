//! Sites: `sample`, `observe`, `param`, `deterministic`, `lift`, `module` and `factor`, their
//! names (unique, indexed inside loops and plates), the batch shape a site's plates require, an
//! observation's `mask` and a factor's log-density term.

use super::*;

impl Checker<'_> {
    pub(super) fn mark_sites(&mut self) {
        if let Some(index) = self.function_index {
            if let Some(flag) = self.function_has_sites.get_mut(index) {
                *flag = true;
            }
        }
    }

    /// Checks a site or plate name: a string literal, a simple name, unique, and varying inside
    /// loops. Returns the name's pattern.
    pub(super) fn site_name(&mut self, value: &Expr, what: &str, plate: bool) -> Option<String> {
        let ExprKind::Str(literal) = &value.kind else {
            if !matches!(value.kind, ExprKind::Error) {
                self.error(
                    Diagnostic::error("E0307", format!("a {what} name must be a string literal"))
                        .with_label(value.span, "not a string literal")
                        .with_hint("write the name in quotes, e.g. `\"w\"`, or interpolate a loop variable: `\"w_{k}\"`"),
                );
            }
            return None;
        };
        let pattern = literal.pattern();
        let example: String = literal
            .parts
            .iter()
            .map(|part| match part {
                StrPart::Text(text) => text.clone(),
                StrPart::Var(_) => "0".to_string(),
            })
            .collect();
        let is_identifier = example
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && example
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plate && !is_identifier {
            self.error(
                Diagnostic::error("E0306", format!("site name \"{pattern}\" is not a simple name"))
                    .with_label(value.span, "not a simple name")
                    .with_hint("site names become column names in draw files: use letters, digits and `_`, starting with a letter"),
            );
        }
        if self.current_function.is_some() {
            return Some(pattern);
        }
        let interpolated: Vec<&str> = literal
            .parts
            .iter()
            .filter_map(|part| match part {
                StrPart::Var(ident) => Some(ident.name.as_str()),
                StrPart::Text(_) => None,
            })
            .collect();
        if let Some(loop_var) = self.loop_vars.last() {
            if !self
                .loop_vars
                .iter()
                .any(|v| interpolated.contains(&v.as_str()))
            {
                self.error(
                    Diagnostic::error(
                        "E0304",
                        format!("the {what} \"{pattern}\" would repeat in every loop iteration"),
                    )
                    .with_label(value.span, "the same name each time round")
                    .with_hint(format!(
                        "put the loop variable in the name, e.g. \"{pattern}_{{{loop_var}}}\""
                    )),
                );
                return Some(pattern);
            }
        }
        self.register_name(&pattern, value.span, what);
        Some(pattern)
    }

    pub(super) fn register_name(&mut self, pattern: &str, span: Span, what: &str) {
        if let Some((_, first)) = self.site_names.iter().find(|(name, _)| name == pattern) {
            let first = *first;
            self.error(
                Diagnostic::error("E0304", format!("duplicate site name \"{pattern}\""))
                    .with_label(span, format!("this {what} reuses the name"))
                    .with_secondary(first, "first used here")
                    .with_hint("every site and plate in a run needs its own name"),
            );
            return;
        }
        self.site_names.push((pattern.to_string(), span));
    }

    pub(super) fn site(
        &mut self,
        call: &Expr,
        callee: &Expr,
        spec: &'static SiteFunctionSpec,
        args: &[Arg],
    ) -> ExprInfo {
        if matches!(spec.kind, SiteFunction::Param | SiteFunction::Sample) {
            let position = if spec.kind == SiteFunction::Param {
                2
            } else {
                3
            };
            let constraint = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "constraint"))
                .or_else(|| args.iter().filter(|a| a.name.is_none()).nth(position));
            // A misspelt constraint gets its own message and suggestions.
            self.constraint_arg = constraint.map(|a| a.value.id);
        }
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        self.constraint_arg = None;
        // `lift` also takes one prior per layer parameter, named after its site suffix
        // (`weight_0`, `bias_2`, `weight_3_1`): those are checked against the network below and
        // the others are matched to the signature.
        let (layer_priors, args, infos): (Vec<&Arg>, Vec<Arg>, Vec<ExprInfo>) =
            if spec.kind == SiteFunction::Lift {
                let mut layer_priors = Vec::new();
                let mut rest = Vec::new();
                let mut rest_infos = Vec::new();
                for (arg, info) in args.iter().zip(infos) {
                    if arg
                        .name
                        .as_ref()
                        .is_some_and(|n| layer_prior_name(&n.name).is_some())
                    {
                        layer_priors.push(arg);
                    } else {
                        rest.push(arg.clone());
                        rest_infos.push(info);
                    }
                }
                (layer_priors, rest, rest_infos)
            } else {
                (Vec::new(), args.to_vec(), infos)
            };
        let args = args.as_slice();
        let slots = self.match_args(spec.name, spec.params, args, call.span, "E0103", "E0102");
        self.record_call(call, Reference::Site(spec), &slots, args);
        self.record(
            callee,
            ExprInfo {
                ty: Ty::Builtin,
                latent: false,
            },
        );
        let arg = |slot: usize| {
            slots
                .get(slot)
                .copied()
                .flatten()
                .map(|(_, index)| (&args[index].value, &infos[index]))
        };
        if matches!(self.context, Context::Data | Context::Network) {
            self.error(
                Diagnostic::error(
                    "E0309",
                    format!(
                        "`{}` creates a site, which only the model or a function can do",
                        spec.name
                    ),
                )
                .with_label(callee.span, "not allowed here")
                .with_hint(
                    "data is fixed before inference; move random quantities into `model { ... }`",
                ),
            );
            return ExprInfo::default();
        }
        self.mark_sites();
        let what = match spec.kind {
            SiteFunction::Lift | SiteFunction::Module => "network",
            _ => "site",
        };
        let name = match arg(0) {
            Some((value, _)) => {
                if matches!(spec.kind, SiteFunction::Lift | SiteFunction::Module) {
                    self.network_site_name(value, arg(1).map(|(v, _)| v))
                } else {
                    self.site_name(value, what, false)
                }
            }
            None => None,
        };
        if let Some(name) = &name {
            self.analysis.sites.push(Site {
                kind: spec.kind,
                name: name.clone(),
                call: call.id,
                span: call.span,
                plates: self.plates.iter().map(|frame| frame.name.clone()).collect(),
                function: self.current_function.clone(),
            });
        }
        let expect_distribution = |checker: &mut Self, slot: usize| -> Option<(Shape, Shape)> {
            let (value, info) = arg(slot)?;
            match &info.ty {
                Ty::Distribution { batch, event, .. } => Some((batch.clone(), event.clone())),
                Ty::Unknown => None,
                other => {
                    checker.error(
                        Diagnostic::error(
                            "E0310",
                            format!("`{}` needs a distribution here", spec.name),
                        )
                        .with_label(value.span, format!("this is {}", other.describe()))
                        .with_hint("write a distribution such as `Normal(0, 1)`"),
                    );
                    None
                }
            }
        };
        match spec.kind {
            SiteFunction::Sample => {
                let dist = expect_distribution(self, 1);
                if let Some((value, info)) = arg(3) {
                    self.sample_constraint(value, info, arg(1).map(|(_, info)| &info.ty));
                }
                let elem = match arg(1).map(|(_, info)| &info.ty) {
                    Some(Ty::Distribution { spec, .. }) if spec.support.is_discrete() => Elem::Int,
                    _ => Elem::Real,
                };
                let extra = arg(2).map(|(value, _)| self.shape_literal(value));
                let plates = self.plate_shape();
                let shape = match (dist, extra) {
                    (Some((batch, event)), Some(expanded)) => {
                        if let Err(conflict) = broadcast(&batch, &expanded) {
                            if let Some((value, _)) = arg(2) {
                                self.error(
                                    Diagnostic::error("E0202", format!("the distribution's batch shape {batch} does not expand to {expanded}"))
                                        .with_label(value.span, "requested shape")
                                        .with_note(format!("axis {} from the right: {} against {}", conflict.axis_from_right, conflict.left, conflict.right))
                                        .with_hint("`shape` must be reachable by broadcasting the parameters"),
                                );
                            }
                        }
                        concat_shapes(&[&plates, &expanded, &event])
                    }
                    (Some((batch, event)), None) => match broadcast(&plates, &batch) {
                        Ok(joined) => concat_shapes(&[&joined, &event]),
                        Err(_) => {
                            if let Some((value, _)) = arg(1) {
                                self.plate_mismatch(value.span, &batch, &plates);
                            }
                            Shape::Unknown
                        }
                    },
                    _ => Shape::Unknown,
                };
                ExprInfo {
                    ty: Ty::Tensor { elem, shape },
                    latent: true,
                }
            }
            SiteFunction::Observe => {
                let dist = expect_distribution(self, 1);
                let Some((value, info)) = arg(2) else {
                    return ExprInfo::default();
                };
                if info.latent {
                    self.error(
                        Diagnostic::error("E0305", "`observe` needs data, but this value depends on a sampled quantity")
                            .with_label(value.span, "depends on a `sample`, `param` or lifted network")
                            .with_hint("observe a data variable (declared in `data { ... }`) or a value derived from data only"),
                    );
                }
                if let Some((batch, event)) = dist.clone() {
                    let plates = self.plate_shape();
                    if let Ok(expected) = broadcast(&plates, &batch) {
                        let expected = concat_shapes(&[&expected, &event]);
                        let observed = info.ty.shape();
                        if let Err(conflict) = broadcast(&expected, &observed) {
                            self.error(
                                Diagnostic::error("E0202", format!("the observed value has shape {observed}, but the distribution's is {expected}"))
                                    .with_label(value.span, format!("shape {observed}"))
                                    .with_note(format!("axis {} from the right: {} against {}", conflict.axis_from_right, conflict.left, conflict.right))
                                    .with_hint("the distribution's batch shape (with its plates) must match the data"),
                            );
                        }
                    } else if let Some((dist_value, _)) = arg(1) {
                        self.plate_mismatch(dist_value.span, &batch, &plates);
                    }
                }
                if let Some((mask, mask_info)) = arg(3) {
                    self.observe_mask(mask, mask_info, &info.ty.shape(), dist.as_ref());
                }
                ExprInfo {
                    ty: info.ty.clone(),
                    latent: info.latent,
                }
            }
            SiteFunction::Factor => {
                if let Some((value, info)) = arg(1) {
                    let real = match &info.ty {
                        Ty::Tensor { elem, .. } => *elem == Elem::Real || *elem == Elem::Int,
                        Ty::Unknown => true,
                        _ => false,
                    };
                    if !real {
                        self.error(
                            Diagnostic::error("E0311", "`factor` needs a real number or tensor as its log-density term")
                                .with_label(value.span, format!("this is {}", info.ty.describe()))
                                .with_hint("write a real-valued log-density such as `-0.5 * sum((y - mu) ** 2)`; it is summed over its elements"),
                        );
                    }
                }
                arg(1).map_or_else(ExprInfo::default, |(_, info)| ExprInfo {
                    ty: Ty::real(info.ty.shape()),
                    latent: info.latent,
                })
            }
            SiteFunction::Param => {
                if let Some((value, info)) = arg(2) {
                    if info.ty != Ty::Constraint && info.ty != Ty::Unknown {
                        self.error(
                            Diagnostic::error("E0308", "the third argument of `param` must be a constraint")
                                .with_label(value.span, format!("this is {}", info.ty.describe()))
                                .with_hint("constraints are real, positive, unit_interval, interval(a, b), greater_than(a), less_than(b), simplex, ordered, positive_ordered, corr_cholesky, cov_cholesky"),
                        );
                    }
                }
                let ty = arg(1).map_or(Ty::Unknown, |(_, info)| match &info.ty {
                    Ty::Tensor { shape, .. } => Ty::real(shape.clone()),
                    other => other.clone(),
                });
                ExprInfo { ty, latent: true }
            }
            SiteFunction::Deterministic => {
                let info = arg(1).map(|(_, info)| info.clone()).unwrap_or_default();
                ExprInfo {
                    ty: info.ty,
                    latent: info.latent,
                }
            }
            SiteFunction::Lift | SiteFunction::Module => {
                let network = arg(1).map(|(_, info)| info.ty.clone());
                let (input, output) = match network {
                    Some(Ty::Network { input, output }) => (input, output),
                    Some(Ty::Unknown) | None => (None, None),
                    Some(other) => {
                        if let Some((value, _)) = arg(1) {
                            self.error(
                                Diagnostic::error(
                                    "E0206",
                                    format!("`{}` needs a network", spec.name),
                                )
                                .with_label(value.span, format!("this is {}", other.describe()))
                                .with_hint("declare one with `network net = Sequential(...)`"),
                            );
                        }
                        (None, None)
                    }
                };
                if spec.kind == SiteFunction::Lift {
                    let given: Vec<usize> = (2..5).filter(|slot| arg(*slot).is_some()).collect();
                    self.layer_priors(call, arg(1).map(|(v, _)| v), &layer_priors);
                    let exprs: Vec<&Expr> = args
                        .iter()
                        .chain(layer_priors.iter().copied())
                        .map(|a| &a.value)
                        .collect();
                    self.fan_in_flag(call, arg(5).map(|(v, _)| v), &exprs);
                    if given.is_empty() && layer_priors.is_empty() {
                        self.error(
                            Diagnostic::error("E0302", "`lift` needs a prior for the weights")
                                .with_label(call.span, "no prior given")
                                .with_hint("write `lift(\"net\", net, Normal(0, 1))`, or set `weight = ...` and `bias = ...`"),
                        );
                    }
                    for slot in given {
                        expect_distribution(self, slot);
                    }
                }
                ExprInfo {
                    ty: Ty::Module { input, output },
                    latent: true,
                }
            }
        }
    }

    /// Registers the weight sites of `lift`/`module` and returns the network's site name.
    pub(super) fn network_site_name(
        &mut self,
        value: &Expr,
        network: Option<&Expr>,
    ) -> Option<String> {
        let pattern = self.site_name(value, "network", true)?;
        let binding = network
            .and_then(|n| self.analysis.references.get(&n.id).copied())
            .and_then(|r| match r {
                Reference::Binding(id) => Some(id),
                _ => None,
            });
        if let Some(info) = binding
            .and_then(|id| self.analysis.networks.get(&id))
            .cloned()
        {
            let is_identifier = pattern
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '{')
                && pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_{}".contains(c));
            if !is_identifier {
                self.error(
                    Diagnostic::error("E0306", format!("site name \"{pattern}\" is not a simple name"))
                        .with_label(value.span, "not a simple name")
                        .with_hint("site names become column names in draw files: use letters, digits and `_`, starting with a letter"),
                );
            }
            if self.current_function.is_none() {
                for site in info.weight_sites(&pattern) {
                    self.register_name(&site, value.span, "network weight");
                }
            }
        }
        Some(pattern)
    }

    /// Checks the `mask` of an `observe`: data only (not latent), 0/1 or boolean, and
    /// broadcastable to the observed value's shape without the distribution's event dimensions.
    fn observe_mask(
        &mut self,
        mask: &Expr,
        info: &ExprInfo,
        observed: &Shape,
        dist: Option<&(Shape, Shape)>,
    ) {
        if info.latent {
            self.error(
                Diagnostic::error("E0312", "a `mask` must be data, but this value depends on a sampled quantity")
                    .with_label(mask.span, "depends on a `sample`, `param` or lifted network")
                    .with_hint("use a 0/1 (or boolean) vector declared in `data { ... }`, or a comparison of data"),
            );
            return;
        }
        let shape = match &info.ty {
            Ty::Tensor { shape, .. } => shape.clone(),
            Ty::Unknown => return,
            other => {
                self.error(
                    Diagnostic::error("E0312", "a `mask` must be a boolean or 0/1 tensor")
                        .with_label(mask.span, format!("this is {}", other.describe()))
                        .with_hint("use a 0/1 (or boolean) vector declared in `data { ... }`, or a comparison of data"),
                );
                return;
            }
        };
        if let Some(number) = constant(mask) {
            if number != 0.0 && number != 1.0 {
                self.error(
                    Diagnostic::error("E0312", "a `mask` holds 0 or 1 (or booleans)")
                        .with_label(mask.span, format!("mask = {number}"))
                        .with_hint(
                            "1 (or true) keeps an element's log-density, 0 (or false) drops it",
                        ),
                );
            }
        }
        // The mask applies to the log-density, whose shape is the observed shape without the
        // event dimensions.
        let event_rank = match dist {
            Some((_, Shape::Known(event))) => event.len(),
            _ => 0,
        };
        let batch = match observed {
            Shape::Known(dims) if dims.len() >= event_rank => {
                Shape::Known(dims[..dims.len() - event_rank].to_vec())
            }
            _ => return,
        };
        if let Err(conflict) = broadcast(&batch, &shape) {
            {
                self.error(
                    Diagnostic::error("E0202", format!("the mask has shape {shape}, but the observation's batch shape is {batch}"))
                        .with_label(mask.span, format!("shape {shape}"))
                        .with_note(format!("axis {} from the right: {} against {}", conflict.axis_from_right, conflict.left, conflict.right))
                        .with_hint("the mask needs one entry per observed element (per row for a multivariate distribution)"),
                );
            }
        }
    }

    /// Checks the `constraint` of a `sample` site: a constraint, on a continuous distribution.
    fn sample_constraint(&mut self, value: &Expr, info: &ExprInfo, dist: Option<&Ty>) {
        if info.ty != Ty::Constraint && info.ty != Ty::Unknown {
            self.error(
                Diagnostic::error("E0308", "the `constraint` of `sample` must be a constraint")
                    .with_label(value.span, format!("this is {}", info.ty.describe()))
                    .with_hint("constraints are real, positive, unit_interval, interval(a, b), greater_than(a), less_than(b), simplex, ordered, positive_ordered, corr_cholesky, cov_cholesky"),
            );
            return;
        }
        if let Some(Ty::Distribution { spec, .. }) = dist {
            if spec.support.is_discrete() {
                self.error(
                    Diagnostic::error("E0313", format!("a constraint on a sample site needs a continuous distribution, but `{}` is discrete", spec.name))
                        .with_label(value.span, "constraint on a discrete site")
                        .with_hint("a constraint maps an unconstrained real vector onto the site's values; remove it, discrete values are not transformed"),
                );
            }
        }
    }
}

/// Splits a per-parameter prior's argument name (`weight_0`, `bias_3_1`) into the parameter
/// name and the layer's path, or `None` for any other name.
pub(crate) fn layer_prior_name(name: &str) -> Option<(&str, &str)> {
    let (parameter, path) = name.split_once('_')?;
    let well_formed = matches!(parameter, "weight" | "bias")
        && !path.is_empty()
        && path
            .split('_')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
    well_formed.then_some((parameter, path))
}

impl Checker<'_> {
    /// Checks the per-parameter priors of a `lift` (`weight_0 = ...`): each must name a
    /// parameter of the network, be a distribution whose shape fits that parameter, and be
    /// given once; every parameter must have a prior from some argument. Records the priors as
    /// arguments of the call, so that lowering keeps them.
    fn layer_priors(&mut self, call: &Expr, network: Option<&Expr>, layer_priors: &[&Arg]) {
        let info = network
            .and_then(|n| self.analysis.references.get(&n.id).copied())
            .and_then(|r| match r {
                Reference::Binding(id) => self.analysis.networks.get(&id).cloned(),
                _ => None,
            });
        let Some(info) = info else { return };
        let parameters: Vec<crate::ir::LayerParameter> = info
            .layers
            .iter()
            .filter_map(|layer| layer.layer.as_ref())
            .flat_map(|layer| layer.parameters(""))
            .collect();
        let names: Vec<String> = parameters
            .iter()
            .map(|p| format!("{}_{}", p.name, p.path))
            .collect();
        let recorded = self
            .analysis
            .calls
            .get(&call.id)
            .map(|info| info.arguments.clone())
            .unwrap_or_default();
        let generic = |key: &str| recorded.iter().any(|(name, _)| name == key);
        let (has_prior, has_weight, has_bias) =
            (generic("prior"), generic("weight"), generic("bias"));
        let mut given: Vec<String> = Vec::new();
        for layer_prior in layer_priors {
            let Some(name) = &layer_prior.name else {
                continue;
            };
            let Some(index) = names.iter().position(|n| *n == name.name) else {
                let hint = match did_you_mean(&name.name, names.iter().map(String::as_str)) {
                    Some(candidate) => format!(
                        "did you mean `{candidate}`? the network's parameters are {}",
                        names.join(", ")
                    ),
                    None if names.is_empty() => "this network has no parameters".to_string(),
                    None => format!("the network's parameters are {}", names.join(", ")),
                };
                self.error(
                    Diagnostic::error(
                        "E0220",
                        format!("the network has no parameter `{}`", name.name),
                    )
                    .with_label(name.span, "no such layer parameter")
                    .with_hint(hint),
                );
                continue;
            };
            if given.contains(&name.name) {
                self.error(
                    Diagnostic::error("E0103", format!("argument `{}` is given twice", name.name))
                        .with_label(layer_prior.span, "given again here")
                        .with_hint("give each layer parameter one prior"),
                );
                continue;
            }
            given.push(name.name.clone());
            let parameter = &parameters[index];
            match self
                .analysis
                .expr(layer_prior.value.id)
                .map(|i| i.ty.clone())
            {
                Some(Ty::Distribution { batch, event, .. }) => {
                    self.layer_prior_shape(layer_prior, parameter, &batch, &event);
                }
                Some(Ty::Unknown) | None => {}
                Some(other) => self.error(
                    Diagnostic::error("E0310", "`lift` needs a distribution here")
                        .with_label(
                            layer_prior.value.span,
                            format!("this is {}", other.describe()),
                        )
                        .with_hint("write a distribution such as `Normal(0, 1)`"),
                ),
            }
            if let Some(call_info) = self.analysis.calls.get_mut(&call.id) {
                call_info
                    .arguments
                    .push((name.name.clone(), layer_prior.value.id));
            }
        }
        let missing: Vec<&String> = parameters
            .iter()
            .zip(&names)
            .filter(|(parameter, name)| {
                let covered_by_generic = has_prior
                    || match parameter.role {
                        crate::ir::ParameterRole::Weight
                        | crate::ir::ParameterRole::Table
                        | crate::ir::ParameterRole::Scale => has_weight,
                        crate::ir::ParameterRole::Bias | crate::ir::ParameterRole::Shift => {
                            has_bias
                        }
                    };
                !covered_by_generic && !given.contains(name)
            })
            .map(|(_, name)| name)
            .collect();
        if !layer_priors.is_empty() && !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
            self.error(
                Diagnostic::error(
                    "E0302",
                    format!("`lift` has no prior for {}", list.join(", ")),
                )
                .with_label(call.span, "some layer parameters have no prior")
                .with_hint(format!(
                    "give `{} = ...`, or a prior for the rest: `prior = ...`, `weight = ...` or `bias = ...`",
                    missing[0]
                )),
            );
        }
    }

    /// Checks that a per-parameter prior's shape fits the parameter: its event shape must be
    /// the parameter's trailing axes and its batch shape must broadcast to the axes before.
    fn layer_prior_shape(
        &mut self,
        layer_prior: &Arg,
        parameter: &crate::ir::LayerParameter,
        batch: &Shape,
        event: &Shape,
    ) {
        let known = |shape: &Shape| -> Option<Vec<i64>> {
            match shape {
                Shape::Known(dims) => dims
                    .iter()
                    .map(|d| match d {
                        Dim::Const(n) => Some(*n),
                        _ => None,
                    })
                    .collect(),
                Shape::Unknown => None,
            }
        };
        let (Some(batch), Some(event)) = (known(batch), known(event)) else {
            return;
        };
        let target: Vec<i64> = parameter.shape.iter().map(|&n| n as i64).collect();
        let fits = event.len() <= target.len() && {
            let (lead, tail) = target.split_at(target.len() - event.len());
            tail == event.as_slice()
                && batch.len() <= lead.len()
                && batch
                    .iter()
                    .rev()
                    .zip(lead.iter().rev())
                    .all(|(b, t)| *b == 1 || b == t)
        };
        if !fits {
            let show = |dims: &[i64]| {
                let parts: Vec<String> = dims.iter().map(i64::to_string).collect();
                format!("[{}]", parts.join(", "))
            };
            let mut whole = batch.clone();
            whole.extend(&event);
            self.error(
                Diagnostic::error(
                    "E0221",
                    format!(
                        "a prior of shape {} does not fit the layer parameter `{}_{}` of shape {}",
                        show(&whole),
                        parameter.name,
                        parameter.path,
                        show(&target)
                    ),
                )
                .with_label(layer_prior.value.span, format!("shape {}", show(&whole)))
                .with_hint(format!(
                    "the prior's shape must broadcast to {} (a scalar prior always does); a multivariate prior's event is the parameter's last axis",
                    show(&target)
                )),
            );
        }
    }

    /// Checks `fan_in = ...` of a `lift`: a boolean literal.
    /// With `fan_in = true`, every prior that applies to weights must be of a location–scale
    /// family ([`crate::catalogue::FAN_IN_FAMILIES`]).
    fn fan_in_flag(&mut self, call: &Expr, value: Option<&Expr>, exprs: &[&Expr]) {
        let Some(value) = value else { return };
        match value.kind {
            ExprKind::Bool(true) => {}
            ExprKind::Bool(false) | ExprKind::Error => return,
            _ => {
                self.error(
                    Diagnostic::error("E0222", "`fan_in` must be `true` or `false`")
                        .with_label(value.span, "not a boolean literal")
                        .with_hint("`fan_in = true` divides each weight prior's location and scale by √fan_in"),
                );
                return;
            }
        }
        let arguments = self
            .analysis
            .calls
            .get(&call.id)
            .map(|info| info.arguments.clone())
            .unwrap_or_default();
        for (name, id) in arguments {
            let applies = name == "prior"
                || name == "weight"
                || layer_prior_name(&name).is_some_and(|(parameter, _)| parameter == "weight");
            if !applies {
                continue;
            }
            let Some(Ty::Distribution { spec, .. }) = self.analysis.expr(id).map(|i| i.ty.clone())
            else {
                continue;
            };
            if !crate::catalogue::FAN_IN_FAMILIES.contains(&spec.name) {
                let span = exprs
                    .iter()
                    .find(|expr| expr.id == id)
                    .map_or(call.span, |expr| expr.span);
                self.error(
                    Diagnostic::error(
                        "E0222",
                        format!("`fan_in = true` cannot rescale a `{}` prior", spec.name),
                    )
                    .with_label(span, "not a location–scale family")
                    .with_hint(format!(
                        "fan-in scaling works for {}; or write the scale yourself, e.g. `weight_0 = Normal(0, 1 / sqrt(3))`",
                        crate::catalogue::FAN_IN_FAMILIES.join(", ")
                    )),
                );
            }
        }
    }
}
