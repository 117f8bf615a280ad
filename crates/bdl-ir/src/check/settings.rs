//! The `infer` block: each setting checked against the catalogue's settings for its kind and
//! value.

use super::*;

impl Checker<'_> {
    pub(super) fn infer(&mut self, infer: &bdl_syntax::InferBlock) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        for setting in &infer.settings {
            let key = &setting.key.name;
            if let Some(first) = seen.get(key) {
                self.error(
                    Diagnostic::error("E0108", format!("setting `{key}` is given twice"))
                        .with_label(setting.key.span, "second value")
                        .with_secondary(*first, "first value")
                        .with_hint("keep one of them"),
                );
                continue;
            }
            seen.insert(key.clone(), setting.key.span);
            let Some(spec) = catalogue::setting(key) else {
                let suggestion =
                    did_you_mean(key, catalogue::INFER_SETTINGS.iter().map(|s| s.name));
                self.error(
                    Diagnostic::error("E0108", format!("unknown setting `{key}`"))
                        .with_label(setting.key.span, "not an inference setting")
                        .with_hint(match suggestion {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => {
                                let names: Vec<&str> =
                                    catalogue::INFER_SETTINGS.iter().map(|s| s.name).collect();
                                format!("the settings are {}", names.join(", "))
                            }
                        }),
                );
                continue;
            };
            let value = &setting.value;
            let number = constant(value);
            let accepted = match spec.kind {
                SettingKind::Choice(choices) => match &value.kind {
                    ExprKind::Name(name) if choices.contains(&name.as_str()) => {
                        Some(SettingValue::Name(name.clone()))
                    }
                    ExprKind::Name(name) => {
                        let hint = match did_you_mean(name, choices.iter().copied()) {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => format!("choose one of {}", choices.join(", ")),
                        };
                        self.error(
                            Diagnostic::error("E0108", format!("unknown {key} `{name}`"))
                                .with_label(value.span, format!("not a valid `{key}`"))
                                .with_hint(hint),
                        );
                        continue;
                    }
                    _ => None,
                },
                SettingKind::PositiveInt | SettingKind::NonNegativeInt => {
                    let minimum = i64::from(spec.kind == SettingKind::PositiveInt);
                    match integer_constant(value) {
                        Some(n) if n >= minimum => Some(SettingValue::Int(n)),
                        _ => None,
                    }
                }
                SettingKind::PositiveReal => match number {
                    Some(x) if x > 0.0 => Some(SettingValue::Real(x)),
                    _ => None,
                },
                SettingKind::Fraction => match number {
                    Some(x) if x > 0.0 && x < 1.0 => Some(SettingValue::Real(x)),
                    _ => None,
                },
                SettingKind::Text => match &value.kind {
                    ExprKind::Str(text) => text.as_plain().map(SettingValue::Text),
                    _ => None,
                },
                SettingKind::Bool => match &value.kind {
                    ExprKind::Bool(flag) => Some(SettingValue::Bool(*flag)),
                    _ => None,
                },
            };
            match accepted {
                Some(accepted) => {
                    self.analysis.infer.insert(key.clone(), accepted);
                }
                None => {
                    let wanted = match spec.kind {
                        SettingKind::Choice(choices) => format!("one of {}", choices.join(", ")),
                        SettingKind::PositiveInt => "a positive integer".to_string(),
                        SettingKind::NonNegativeInt => "an integer ≥ 0".to_string(),
                        SettingKind::PositiveReal => "a positive number".to_string(),
                        SettingKind::Fraction => "a number between 0 and 1".to_string(),
                        SettingKind::Text => "a string".to_string(),
                        SettingKind::Bool => "`true` or `false`".to_string(),
                    };
                    self.error(
                        Diagnostic::error("E0108", format!("invalid value for `{key}`"))
                            .with_label(value.span, format!("expected {wanted}"))
                            .with_hint(format!("`{key}` takes {wanted}")),
                    );
                }
            }
        }
    }
}
