//! Shape arithmetic on plain values: NumPy broadcasting of shapes and of data, used to work out
//! batch shapes and to spread parameter values over the elements being sampled.

use bdl_autodiff::Tensor;

/// The NumPy broadcast of two shapes, or `None` when some axis disagrees.
pub fn broadcast_shapes(left: &[usize], right: &[usize]) -> Option<Vec<usize>> {
    let rank = left.len().max(right.len());
    let mut shape = vec![0; rank];
    for (axis, extent) in shape.iter_mut().enumerate() {
        let left_extent = extent_from_right(left, rank - 1 - axis);
        let right_extent = extent_from_right(right, rank - 1 - axis);
        *extent = match (left_extent, right_extent) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => return None,
        };
    }
    Some(shape)
}

/// The extent of the axis `offset` places from the right, or 1 past the left end.
fn extent_from_right(shape: &[usize], offset: usize) -> usize {
    if offset < shape.len() {
        shape[shape.len() - 1 - offset]
    } else {
        1
    }
}

/// Whether `shape` broadcasts to exactly `target` (NumPy's `broadcast_to` rule).
pub fn broadcasts_to(shape: &[usize], target: &[usize]) -> bool {
    broadcast_shapes(shape, target).is_some_and(|joint| joint == target)
}

/// The elements of `tensor` repeated to fill `target`, which it must broadcast to. Returns
/// `None` when it does not.
pub fn broadcast_data(tensor: &Tensor, target: &[usize]) -> Option<Vec<f64>> {
    let shape = tensor.shape();
    if !broadcasts_to(shape, target) {
        return None;
    }
    let count: usize = target.iter().product();
    let data = tensor.data();
    if shape == target {
        return Some(data.to_vec());
    }
    if data.len() == 1 {
        return Some(vec![data[0]; count]);
    }
    // The stride of each target axis in the source (0 where the source is broadcast).
    let rank = target.len();
    let mut strides = vec![0usize; rank];
    let mut stride = 1usize;
    for offset in 0..shape.len() {
        let axis = rank - 1 - offset;
        let extent = shape[shape.len() - 1 - offset];
        strides[axis] = if extent == 1 { 0 } else { stride };
        stride *= extent;
    }
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; rank];
    for _ in 0..count {
        let position: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(data[position]);
        for axis in (0..rank).rev() {
            index[axis] += 1;
            if index[axis] < target[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Some(out)
}

/// Splits `shape` into its leading part and its last `event_rank` axes, or `None` when it is
/// too short.
pub fn split_event(shape: &[usize], event_rank: usize) -> Option<(&[usize], &[usize])> {
    (shape.len() >= event_rank).then(|| shape.split_at(shape.len() - event_rank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_numpy() {
        assert_eq!(broadcast_shapes(&[3], &[2, 1]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[], &[4]), Some(vec![4]));
        assert_eq!(broadcast_shapes(&[2], &[3]), None);
        assert!(broadcasts_to(&[1, 3], &[5, 3]));
        assert!(!broadcasts_to(&[5, 3], &[3]));
    }

    #[test]
    fn data_broadcast_repeats_elements() {
        let column = Tensor::from_shape(&[2, 1], vec![1.0, 2.0]).unwrap();
        assert_eq!(
            broadcast_data(&column, &[2, 3]),
            Some(vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
        );
        let row = Tensor::vector(vec![1.0, 2.0, 3.0]);
        assert_eq!(
            broadcast_data(&row, &[2, 3]),
            Some(vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
        );
        assert_eq!(broadcast_data(&row, &[2]), None);
    }
}
