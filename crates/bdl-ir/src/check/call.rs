//! Calls: matching arguments to parameters by position and name, resolving the callee, and
//! applying a value (a user function or a lifted network) to arguments.

use super::*;

impl Checker<'_> {
    /// Matches arguments to parameters, reporting arity and naming problems.
    pub(super) fn match_args(
        &mut self,
        callee: &str,
        params: &'static [Param],
        args: &[Arg],
        call_span: Span,
        unknown_code: &str,
        arity_code: &str,
    ) -> Slots {
        let mut slots: Slots = vec![None; params.len()];
        // After a misplaced or misspelt argument, "missing" errors would only repeat the news.
        let mut misplaced = false;
        let mut seen_named = false;
        let mut positional = 0;
        let signature = catalogue::signature(callee, params);
        for (index, arg) in args.iter().enumerate() {
            match &arg.name {
                None => {
                    if seen_named {
                        misplaced = true;
                        self.error(
                            Diagnostic::error("E0106", "positional argument after a named one")
                                .with_label(arg.span, "positional argument")
                                .with_hint(
                                    "put positional arguments first, then `name = value` ones",
                                ),
                        );
                        continue;
                    }
                    if positional >= params.len() {
                        if positional == params.len() {
                            self.error(
                                Diagnostic::error(
                                    arity_code,
                                    format!(
                                        "`{callee}` takes {} but {} were given",
                                        count(params.len(), "argument"),
                                        args.iter().filter(|a| a.name.is_none()).count()
                                    ),
                                )
                                .with_label(arg.span, "unexpected argument")
                                .with_hint(format!("the signature is {signature}")),
                            );
                        }
                        positional += 1;
                        continue;
                    }
                    slots[positional] = Some((params[positional].names[0], index));
                    positional += 1;
                }
                Some(name) => {
                    seen_named = true;
                    let found = params.iter().enumerate().find_map(|(slot, param)| {
                        param
                            .names
                            .iter()
                            .find(|candidate| **candidate == name.name)
                            .map(|candidate| (slot, *candidate))
                    });
                    let Some((slot, used)) = found else {
                        misplaced = true;
                        let all = params.iter().flat_map(|p| p.names.iter().copied());
                        let hint = match did_you_mean(&name.name, all) {
                            Some(candidate) => {
                                format!("did you mean `{candidate}`? the signature is {signature}")
                            }
                            None => format!("the signature is {signature}"),
                        };
                        self.error(
                            Diagnostic::error(
                                unknown_code,
                                format!("`{callee}` has no parameter `{}`", name.name),
                            )
                            .with_label(name.span, "unknown parameter")
                            .with_hint(hint),
                        );
                        continue;
                    };
                    if let Some((previous, _)) = slots[slot] {
                        let (code, message) = if previous == used {
                            ("E0103", format!("argument `{used}` is given twice"))
                        } else {
                            (
                                "E0303",
                                format!(
                                    "`{callee}` takes either `{previous}` or `{used}`, not both"
                                ),
                            )
                        };
                        self.error(
                            Diagnostic::error(code, message)
                                .with_label(arg.span, "given again here")
                                .with_hint(format!("the signature is {signature}")),
                        );
                        continue;
                    }
                    slots[slot] = Some((used, index));
                }
            }
        }
        for (slot, param) in slots.iter().zip(params) {
            if slot.is_none() && param.required && !misplaced {
                let names = param
                    .names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                self.error(
                    Diagnostic::error(arity_code, format!("`{callee}` is missing {names}"))
                        .with_label(call_span, format!("{names} not given"))
                        .with_hint(format!("the signature is {signature}")),
                );
            }
        }
        slots
    }

    pub(super) fn record_call(
        &mut self,
        call: &Expr,
        callee: Reference,
        slots: &Slots,
        args: &[Arg],
    ) {
        let arguments = slots
            .iter()
            .flatten()
            .map(|(name, index)| (name.to_string(), args[*index].value.id))
            .collect();
        self.analysis
            .calls
            .insert(call.id, CallInfo { callee, arguments });
    }

    pub(super) fn call(&mut self, call: &Expr, callee: &Expr, args: &[Arg]) -> ExprInfo {
        let Some(name) = callee.as_name() else {
            let callee_info = self.expr(callee);
            return self.apply_value(call, callee, &callee_info, args);
        };
        let Some(reference) = self.resolve(name) else {
            for arg in args {
                self.expr(&arg.value);
            }
            if self.constraint_arg == Some(call.id) {
                self.unknown_constraint(name, callee.span);
            } else if name.chars().next().is_some_and(char::is_uppercase)
                && !self.program.incomplete
            {
                let suggestion = did_you_mean(
                    name,
                    catalogue::DISTRIBUTIONS
                        .iter()
                        .map(|d| d.name)
                        .chain(catalogue::LAYERS.iter().map(|l| l.name)),
                );
                self.error(
                    Diagnostic::error("E0301", format!("unknown distribution `{name}`"))
                        .with_label(callee.span, "not a distribution")
                        .with_hint(match suggestion {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => "docs/language.md lists every distribution".to_string(),
                        }),
                );
            } else {
                self.unknown_name(name, callee.span);
            }
            return ExprInfo::default();
        };
        self.analysis.references.insert(callee.id, reference);
        match reference {
            Reference::Binding(id) => {
                let binding = self.use_binding(id).clone();
                self.record(
                    callee,
                    ExprInfo {
                        ty: binding.ty.clone(),
                        latent: binding.latent,
                    },
                );
                let callee_info = ExprInfo {
                    ty: binding.ty,
                    latent: binding.latent,
                };
                self.apply_value(call, callee, &callee_info, args)
            }
            Reference::Distribution(spec) => self.distribution(call, callee, spec, args),
            Reference::Function(spec) => self.builtin(call, callee, spec, args),
            Reference::Site(spec) => self.site(call, callee, spec, args),
            Reference::Layer(spec) => {
                for arg in args {
                    self.expr(&arg.value);
                }
                self.layer_outside_network(callee.span, spec.name);
                ExprInfo::default()
            }
            Reference::Constraint(spec) => {
                let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
                if spec.params.is_empty() {
                    self.error(
                        Diagnostic::error(
                            "E0102",
                            format!("the constraint `{}` takes no arguments", spec.name),
                        )
                        .with_label(call.span, "called here")
                        .with_hint(format!("write `{}` without parentheses", spec.name)),
                    );
                }
                let slots =
                    self.match_args(spec.name, spec.params, args, call.span, "E0103", "E0102");
                self.record_call(call, reference, &slots, args);
                ExprInfo {
                    ty: Ty::Constraint,
                    latent: infos.iter().any(|i| i.latent),
                }
            }
        }
    }

    /// A call whose callee is a value: a user function or a lifted network.
    pub(super) fn apply_value(
        &mut self,
        call: &Expr,
        callee: &Expr,
        callee_info: &ExprInfo,
        args: &[Arg],
    ) -> ExprInfo {
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        let latent = callee_info.latent || infos.iter().any(|i| i.latent);
        match &callee_info.ty {
            Ty::Function(index) => {
                let function = self.program.functions().nth(*index);
                if let Some(function) = function {
                    let named = args.iter().find(|a| a.name.is_some());
                    if let Some(arg) = named {
                        self.error(
                            Diagnostic::error("E0103", "functions take positional arguments only")
                                .with_label(arg.span, "named argument")
                                .with_hint("pass the arguments in order"),
                        );
                    }
                    if args.len() != function.params.len() {
                        let params: Vec<&str> =
                            function.params.iter().map(|p| p.name.as_str()).collect();
                        self.error(
                            Diagnostic::error(
                                "E0102",
                                format!(
                                    "`{}` takes {} but {} were given",
                                    function.name.name,
                                    count(function.params.len(), "argument"),
                                    args.len()
                                ),
                            )
                            .with_label(call.span, "wrong number of arguments")
                            .with_secondary(function.name.span, "defined here")
                            .with_hint(format!(
                                "the signature is {}({})",
                                function.name.name,
                                params.join(", ")
                            )),
                        );
                    }
                    let arguments = function
                        .params
                        .iter()
                        .zip(args)
                        .map(|(param, arg)| (param.name.clone(), arg.value.id))
                        .collect();
                    if let Some(reference) = self.analysis.references.get(&callee.id).copied() {
                        self.analysis.calls.insert(
                            call.id,
                            CallInfo {
                                callee: reference,
                                arguments,
                            },
                        );
                    }
                }
                let has_sites = self
                    .function_has_sites
                    .get(*index)
                    .copied()
                    .unwrap_or(false);
                if has_sites {
                    self.mark_sites();
                }
                ExprInfo {
                    ty: Ty::Unknown,
                    latent: latent || has_sites,
                }
            }
            Ty::Module { input, output } => {
                if args.len() != 1 || args[0].name.is_some() {
                    self.error(
                        Diagnostic::error("E0102", "a lifted network takes one input")
                            .with_label(
                                call.span,
                                format!("{} given", count(args.len(), "argument")),
                            )
                            .with_hint("call it on the input batch: `net(x)`"),
                    );
                    return ExprInfo {
                        ty: Ty::Unknown,
                        latent,
                    };
                }
                if let Some(reference) = self.analysis.references.get(&callee.id).copied() {
                    self.analysis.calls.insert(
                        call.id,
                        CallInfo {
                            callee: reference,
                            arguments: vec![("x".to_string(), args[0].value.id)],
                        },
                    );
                }
                let ty = self.module_output(
                    &args[0].value,
                    &infos[0].ty,
                    input.as_ref(),
                    output.as_ref(),
                );
                ExprInfo { ty, latent: true }
            }
            Ty::Network { .. } => {
                self.error(
                    Diagnostic::error("E0105", "a network must be lifted before it is called")
                        .with_label(callee.span, "a network declaration")
                        .with_hint("give its weights priors with `let f = lift(\"net\", net, Normal(0, 1))` (or `module` for point estimates), then call `f(x)`"),
                );
                ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                }
            }
            Ty::Unknown => ExprInfo {
                ty: Ty::Unknown,
                latent,
            },
            other => {
                self.error(
                    Diagnostic::error("E0105", "this cannot be called")
                        .with_label(callee.span, format!("this is {}", other.describe()))
                        .with_hint("only functions, distributions and lifted networks are called"),
                );
                ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                }
            }
        }
    }

    pub(super) fn module_output(
        &mut self,
        value: &Expr,
        ty: &Ty,
        input: Option<&Dim>,
        output: Option<&Dim>,
    ) -> Ty {
        let Ty::Tensor {
            shape: Shape::Known(dims),
            ..
        } = ty
        else {
            if !ty.is_tensor_like() {
                self.not_a_tensor(value.span, ty, "network input");
            }
            return Ty::real(Shape::Unknown);
        };
        let out_dims = |batch: &[Dim]| {
            let mut dims = batch.to_vec();
            match output {
                Some(Dim::Const(1)) => {}
                Some(out) => dims.push(out.clone()),
                None => return Shape::Unknown,
            }
            Shape::Known(dims)
        };
        match dims.as_slice() {
            [] => {
                self.error(
                    Diagnostic::error("E0201", "a network needs a vector or matrix input")
                        .with_label(value.span, "this is a scalar")
                        .with_hint("pass a batch of inputs: `[N]` for one feature or `[N, in]`"),
                );
                Ty::Unknown
            }
            [rows] => match input {
                Some(Dim::Const(1)) | None => Ty::real(out_dims(std::slice::from_ref(rows))),
                Some(width) => {
                    self.error(
                        Diagnostic::error(
                            "E0201",
                            format!("the network takes {width} inputs, but its input is a vector"),
                        )
                        .with_label(value.span, format!("shape [{rows}]"))
                        .with_hint(format!("pass a matrix of shape [N, {width}]")),
                    );
                    Ty::Unknown
                }
            },
            [batch @ .., last] => {
                if let Some(width) = input {
                    if width.conflicts(last) {
                        self.error(
                            Diagnostic::error(
                                "E0201",
                                format!("the network takes {width} inputs, but its input has {last} columns"),
                            )
                            .with_label(value.span, format!("shape {}", Shape::Known(dims.clone())))
                            .with_hint("make the first layer's input size match the data's columns"),
                        );
                        return Ty::Unknown;
                    }
                }
                Ty::real(out_dims(batch))
            }
        }
    }
}
