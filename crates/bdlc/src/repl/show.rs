//! How the REPL prints values: a tensor as nested brackets followed by its type in the words of
//! the data block (`real`, `vector[3]`, `matrix[2, 2]`, `int[4]`), long axes shortened NumPy's
//! way (the first and last three entries around `...`).

use crate::output::display_number;
use bdl_autodiff::{Tape, Tensor};
use bdl_runtime::value::{Elem, Value};

/// Above this many elements, every axis shows only its edges.
const SUMMARISE_ABOVE: usize = 100;
/// How many entries each end of a shortened axis keeps.
const EDGE_ITEMS: usize = 3;

/// A value as text, or `None` for values with nothing to show (a statement's unit).
pub fn value(value: &Value, tape: &Tape) -> Option<String> {
    match value {
        Value::Tensor(tensor) => Some(self::tensor(tape.value(tensor.var), tensor.elem)),
        Value::Str(text) => Some(format!("{text:?} : string")),
        Value::Range { start, end } => Some(format!("{start}..{end} : range")),
        Value::Unit => None,
        Value::Network(_) | Value::Module(_) | Value::Dist(..) | Value::Constraint(_) => {
            Some(value.describe(tape))
        }
        Value::NewAxis => Some("None".to_string()),
    }
}

/// The type of a tensor in the data block's words.
pub fn type_name(shape: &[usize], elem: Elem) -> String {
    let dims = |shape: &[usize]| {
        shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (elem, shape.len()) {
        (Elem::Real, 0) => "real".to_string(),
        (Elem::Real, 1) => format!("vector[{}]", dims(shape)),
        (Elem::Real, 2) => format!("matrix[{}]", dims(shape)),
        (Elem::Real, _) => format!("tensor[{}]", dims(shape)),
        (Elem::Int, 0) => "int".to_string(),
        (Elem::Int, _) => format!("int[{}]", dims(shape)),
        (Elem::Bool, 0) => "bool".to_string(),
        (Elem::Bool, _) => format!("bool[{}]", dims(shape)),
    }
}

/// One element.
fn element(value: f64, elem: Elem) -> String {
    match elem {
        Elem::Bool => if value != 0.0 { "true" } else { "false" }.to_string(),
        Elem::Int if value.fract() == 0.0 && value.abs() < 1e15 => format!("{}", value as i64),
        _ => display_number(value),
    }
}

/// A tensor with its type: `[1, 2, 3] : vector[3]`.
pub fn tensor(tensor: &Tensor, elem: Elem) -> String {
    let shape = tensor.shape();
    let summarise = tensor.len() > SUMMARISE_ABOVE;
    let texts: Vec<String> = tensor.data().iter().map(|&v| element(v, elem)).collect();
    let width = texts.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let body = if shape.is_empty() {
        texts.first().cloned().unwrap_or_default()
    } else {
        let pad = shape.len() > 1;
        nested(&texts, shape, 0, if pad { width } else { 0 }, summarise)
    };
    format!("{body} : {}", type_name(shape, elem))
}

/// The indices shown along an axis of `size` entries (`None` marks the `...`).
fn shown_indices(size: usize, summarise: bool) -> Vec<Option<usize>> {
    if summarise && size > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((size - EDGE_ITEMS..size).map(Some))
            .collect()
    } else {
        (0..size).map(Some).collect()
    }
}

/// The bracketed text of `texts` (row-major, of `shape`), the outer axis at `depth` columns
/// of indentation.
fn nested(
    texts: &[String],
    shape: &[usize],
    depth: usize,
    width: usize,
    summarise: bool,
) -> String {
    let inner: usize = shape[1..].iter().product();
    let indices = shown_indices(shape[0], summarise);
    if shape.len() == 1 {
        let items: Vec<String> = indices
            .iter()
            .map(|index| match index {
                Some(i) => format!("{:>width$}", texts[*i]),
                None => "...".to_string(),
            })
            .collect();
        return format!("[{}]", items.join(", "));
    }
    let separator = format!(",\n{}", " ".repeat(depth + 1));
    let items: Vec<String> = indices
        .iter()
        .map(|index| match index {
            Some(i) => nested(
                &texts[i * inner..(i + 1) * inner],
                &shape[1..],
                depth + 1,
                width,
                summarise,
            ),
            None => "...".to_string(),
        })
        .collect();
    format!("[{}]", items.join(&separator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_print_with_their_type() {
        assert_eq!(tensor(&Tensor::scalar(2.5), Elem::Real), "2.5 : real");
        assert_eq!(
            tensor(&Tensor::vector(vec![1.0, 2.0, 3.0]), Elem::Int),
            "[1, 2, 3] : int[3]"
        );
        let matrix = Tensor::matrix(2, 2, vec![1.0, -20.5, 3.0, 4.0]).unwrap();
        assert_eq!(
            tensor(&matrix, Elem::Real),
            "[[    1, -20.5],\n [    3,     4]] : matrix[2, 2]"
        );
        assert_eq!(
            tensor(&Tensor::vector(vec![1.0, 0.0]), Elem::Bool),
            "[true, false] : bool[2]"
        );
    }

    #[test]
    fn long_tensors_show_their_edges() {
        let long = Tensor::vector((0..1000).map(f64::from).collect());
        assert_eq!(
            tensor(&long, Elem::Int),
            "[0, 1, 2, ..., 997, 998, 999] : int[1000]"
        );
    }
}
