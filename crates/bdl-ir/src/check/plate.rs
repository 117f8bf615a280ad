//! Plates: `plate(...)` blocks, their sizes, subsampling and dimensions, and the batch shape
//! the enclosing plates give to a site.

use super::*;

impl Checker<'_> {
    pub(super) fn plate(&mut self, span: Span, plate: &bdl_syntax::Plate) {
        let infos: Vec<ExprInfo> = plate.args.iter().map(|arg| self.expr(&arg.value)).collect();
        let header = Span::new(span.file, span.range().start..span.range().start + 5);
        let slots = self.match_args("plate", PLATE_PARAMS, &plate.args, header, "E0103", "E0102");
        let arg =
            |slot: usize| slots[slot].map(|(_, index)| (&plate.args[index].value, &infos[index]));
        if self.context == Context::Data || self.context == Context::Network {
            self.error(
                Diagnostic::error("E0309", "plates belong in the model or a function")
                    .with_label(header, "not allowed here")
                    .with_hint("move the plate into `model { ... }`"),
            );
        }
        let name = match arg(0) {
            Some((value, _)) => self.site_name(value, "plate", true).unwrap_or_default(),
            None => String::new(),
        };
        let mut size = Dim::Unknown;
        if let Some((value, info)) = arg(1) {
            size = self.integer_size(value, info, "plate size", "E0203");
        }
        let mut subsample = None;
        if let Some((value, info)) = arg(2) {
            let batch = self.integer_size(value, info, "subsample size", "E0205");
            if let (Dim::Const(batch_size), Dim::Const(full)) = (&batch, &size) {
                if batch_size > full {
                    let size_span = arg(1).map_or(header, |(v, _)| v.span);
                    self.error(
                        Diagnostic::error(
                            "E0205",
                            format!(
                                "subsample of {batch_size} is larger than the plate's size {full}"
                            ),
                        )
                        .with_label(value.span, "subsample size")
                        .with_secondary(size_span, "plate size")
                        .with_hint("a mini-batch takes at most the plate's size"),
                    );
                }
            }
            subsample = Some(batch);
        }
        let mut dim = -(self.plates.len() as i64) - 1;
        if let Some((value, _)) = arg(3) {
            match constant(value) {
                Some(d) if d < 0.0 && d.fract() == 0.0 => dim = d as i64,
                _ => self.error(
                    Diagnostic::error("E0209", "`dim` must be a negative integer literal")
                        .with_label(value.span, "not a negative integer")
                        .with_hint(
                            "plates count dimensions from the right: `dim = -1`, `dim = -2`, …",
                        ),
                ),
            }
        }
        if let Some(other) = self.plates.iter().find(|frame| frame.dim == dim) {
            let message = format!("plates `{}` and `{name}` both use dim {dim}", other.name);
            self.error(
                Diagnostic::error("E0209", message)
                    .with_label(header, "this plate")
                    .with_hint("give nested plates different `dim`s"),
            );
        }
        let frame_size = subsample.clone().unwrap_or_else(|| size.clone());
        self.scopes.push(HashMap::new());
        let index = plate.index.as_ref().map(|ident| {
            self.bind(
                ident,
                BindingKind::PlateIndex,
                Ty::int(Shape::Known(vec![frame_size.clone()])),
                false,
            )
        });
        self.analysis.plates.insert(
            span,
            PlateInfo {
                name: name.clone(),
                size,
                subsample,
                dim,
                index,
            },
        );
        self.plates.push(PlateFrame {
            name,
            dim,
            size: frame_size,
        });
        self.block_statements(&plate.body);
        self.plates.pop();
        self.scopes.pop();
    }

    /// Checks an integer size argument (plate size, subsample) and returns its dimension.
    pub(super) fn integer_size(
        &mut self,
        value: &Expr,
        info: &ExprInfo,
        what: &str,
        code: &str,
    ) -> Dim {
        let is_int_scalar = matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.rank().is_none_or(|r| r == 0));
        if !is_int_scalar && info.ty != Ty::Unknown {
            self.error(
                Diagnostic::error(code, format!("the {what} must be an integer"))
                    .with_label(value.span, format!("found {}", info.ty.describe()))
                    .with_hint("use an integer literal, an `int` from the data block, or `len(x)`"),
            );
            return Dim::Unknown;
        }
        if let ExprKind::Int(n) = value.kind {
            if n <= 0 {
                self.error(
                    Diagnostic::error(code, format!("the {what} must be positive"))
                        .with_label(value.span, format!("{n}"))
                        .with_hint("use a positive integer"),
                );
            }
        }
        self.dim_value(value)
    }

    /// The shape the enclosing plates give to a site's batch.
    pub(super) fn plate_shape(&self) -> Shape {
        let rank = self
            .plates
            .iter()
            .map(|frame| frame.dim.unsigned_abs() as usize)
            .max()
            .unwrap_or(0);
        let mut dims = vec![Dim::Const(1); rank];
        for frame in &self.plates {
            dims[rank - frame.dim.unsigned_abs() as usize] = frame.size.clone();
        }
        Shape::Known(dims)
    }

    pub(super) fn plate_mismatch(&mut self, span: Span, batch: &Shape, plates: &Shape) {
        self.error(
            Diagnostic::error("E0202", format!("the distribution's batch shape {batch} does not fit the enclosing plates {plates}"))
                .with_label(span, format!("batch shape {batch}"))
                .with_hint("a site inside a plate gets the plate's size on the plate's dimension; the parameters must broadcast to it"),
        );
    }
}
