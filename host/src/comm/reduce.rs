//! Element-wise numeric reduction of little-endian arrays.
//!
//! `fold` combines the parts in the order given, so callers that fold in
//! worker-id order get the same floating-point result on every run and in
//! every layout. Lengths come from guests: they are checked, never trusted.

use bytes::Bytes;

use crate::{Dtype, ReduceOp};

/// Why parts cannot be reduced.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReduceError {
    /// A part is not a whole number of elements.
    #[error("{len} bytes is not a whole number of {size}-byte elements")]
    Ragged {
        /// Length of the part.
        len: usize,
        /// Element size.
        size: usize,
    },
    /// Two parts have different lengths.
    #[error("reduce inputs have different lengths: {expected} and {found} bytes")]
    LengthMismatch {
        /// Length of the first part.
        expected: usize,
        /// Length of the part that differs.
        found: usize,
    },
}

/// One pass of `$f` over two arrays of `$t`. `$f` stays a function item or
/// closure (never a `fn` pointer), so the loop is inlined and vectorised.
macro_rules! apply {
    ($t:ty, $acc:expr, $other:expr, $f:expr) => {{
        const SIZE: usize = std::mem::size_of::<$t>();
        let f = $f;
        for (a, b) in $acc.chunks_exact_mut(SIZE).zip($other.chunks_exact(SIZE)) {
            let x = <$t>::from_le_bytes(a.try_into().expect("chunks have SIZE bytes"));
            let y = <$t>::from_le_bytes(b.try_into().expect("chunks have SIZE bytes"));
            a.copy_from_slice(&f(x, y).to_le_bytes());
        }
    }};
}

macro_rules! combine_as {
    ($t:ty, $acc:expr, $other:expr, $op:expr, $add:expr, $mul:expr, $min:expr, $max:expr) => {
        match $op {
            ReduceOp::Sum => apply!($t, $acc, $other, $add),
            ReduceOp::Prod => apply!($t, $acc, $other, $mul),
            ReduceOp::Min => apply!($t, $acc, $other, $min),
            ReduceOp::Max => apply!($t, $acc, $other, $max),
        }
    };
}

macro_rules! combine_int {
    ($t:ty, $acc:expr, $other:expr, $op:expr) => {
        combine_as!($t, $acc, $other, $op, <$t>::wrapping_add, <$t>::wrapping_mul, <$t>::min, <$t>::max)
    };
}

macro_rules! combine_float {
    ($t:ty, $acc:expr, $other:expr, $op:expr) => {
        combine_as!($t, $acc, $other, $op, |x, y| x + y, |x, y| x * y, <$t>::min, <$t>::max)
    };
}

fn combine_into(ty: Dtype, op: ReduceOp, acc: &mut [u8], other: &[u8]) {
    match ty {
        Dtype::U8 => combine_int!(u8, acc, other, op),
        Dtype::I32 => combine_int!(i32, acc, other, op),
        Dtype::U32 => combine_int!(u32, acc, other, op),
        Dtype::I64 => combine_int!(i64, acc, other, op),
        Dtype::U64 => combine_int!(u64, acc, other, op),
        Dtype::F32 => combine_float!(f32, acc, other, op),
        Dtype::F64 => combine_float!(f64, acc, other, op),
    }
}

/// Checks that `len` bytes hold whole elements of `ty`.
///
/// # Errors
/// [`ReduceError::Ragged`] otherwise.
pub fn check_elements(ty: Dtype, len: usize) -> Result<(), ReduceError> {
    let size = ty.size();
    if len.is_multiple_of(size) { Ok(()) } else { Err(ReduceError::Ragged { len, size }) }
}

/// Bytes of the result folded through every part before the next block:
/// small enough that the block stays in the core's cache while each part
/// streams past it once, so a fold of k parts reads each part once and
/// writes the result once instead of passing over the result k times. A
/// multiple of every element size.
const FOLD_BLOCK: usize = 16 << 10;

/// Combines `parts` element-wise with `op`, in iteration order.
///
/// One part is returned as is (no copy); more parts cost one pass that
/// reads every part once and writes the result once, block by block
/// ([`FOLD_BLOCK`]). Each element is still combined in the parts' order,
/// so the floating-point result does not depend on the blocking.
///
/// # Errors
/// [`ReduceError`] when a part is ragged or the lengths differ.
pub fn fold<'a>(ty: Dtype, op: ReduceOp, parts: impl IntoIterator<Item = &'a Bytes>) -> Result<Bytes, ReduceError> {
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Ok(Bytes::new());
    };
    check_elements(ty, first.len())?;
    let rest: Vec<&Bytes> = parts.collect();
    if let Some(part) = rest.iter().find(|part| part.len() != first.len()) {
        return Err(ReduceError::LengthMismatch { expected: first.len(), found: part.len() });
    }
    if rest.is_empty() {
        return Ok(first.clone());
    }
    let mut acc = Vec::with_capacity(first.len());
    for start in (0..first.len()).step_by(FOLD_BLOCK) {
        let end = (start + FOLD_BLOCK).min(first.len());
        acc.extend_from_slice(&first[start..end]);
        let block = &mut acc[start..end];
        for part in &rest {
            combine_into(ty, op, block, &part[start..end]);
        }
    }
    Ok(Bytes::from(acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Bytes {
        Bytes::from(values.iter().flat_map(|&v| to(v)).collect::<Vec<u8>>())
    }

    #[test]
    fn every_type_and_op_combines_element_wise() {
        let a = le(&[1i64, -5, 7], i64::to_le_bytes);
        let b = le(&[10i64, 3, -2], i64::to_le_bytes);
        let c = le(&[2i64, 2, 2], i64::to_le_bytes);
        let cases = [
            (ReduceOp::Sum, [13i64, 0, 7]),
            (ReduceOp::Prod, [20, -30, -28]),
            (ReduceOp::Min, [1, -5, -2]),
            (ReduceOp::Max, [10, 3, 7]),
        ];
        for (op, expected) in cases {
            let out = fold(Dtype::I64, op, [&a, &b, &c]).expect("same lengths");
            assert_eq!(out, le(&expected, i64::to_le_bytes), "{op:?}");
        }
        let x = le(&[1.5f64, -2.0], f64::to_le_bytes);
        let y = le(&[0.25f64, 8.0], f64::to_le_bytes);
        assert_eq!(fold(Dtype::F64, ReduceOp::Sum, [&x, &y]).expect("ok"), le(&[1.75f64, 6.0], f64::to_le_bytes));
        let u = Bytes::from_static(&[250, 3]);
        let v = Bytes::from_static(&[10, 4]);
        assert_eq!(&fold(Dtype::U8, ReduceOp::Sum, [&u, &v]).expect("ok")[..], &[4, 7], "u8 sum wraps");
        let p = le(&[3.0f32], f32::to_le_bytes);
        let q = le(&[-1.0f32], f32::to_le_bytes);
        assert_eq!(fold(Dtype::F32, ReduceOp::Min, [&p, &q]).expect("ok"), q);
        let m = le(&[u32::MAX, 4], u32::to_le_bytes);
        let n = le(&[2u32, 5], u32::to_le_bytes);
        assert_eq!(fold(Dtype::U32, ReduceOp::Max, [&m, &n]).expect("ok"), le(&[u32::MAX, 5], u32::to_le_bytes));
        let i = le(&[i32::MIN, 9], i32::to_le_bytes);
        assert_eq!(fold(Dtype::I32, ReduceOp::Sum, [&i, &i]).expect("ok"), le(&[0i32, 18], i32::to_le_bytes));
        let big = le(&[u64::MAX], u64::to_le_bytes);
        assert_eq!(fold(Dtype::U64, ReduceOp::Prod, [&big, &big]).expect("ok"), le(&[1u64], u64::to_le_bytes));
    }

    #[test]
    fn folds_spanning_many_blocks_equal_an_element_by_element_sum() {
        // Lengths around the block size, not multiples of it; floats whose
        // sum depends on the order of the parts.
        for elements in [1, FOLD_BLOCK / 8 - 1, FOLD_BLOCK / 8, 3 * FOLD_BLOCK / 8 + 5] {
            let parts: Vec<Vec<f64>> = (0..5u32)
                .map(|p| (0..elements).map(|i| (i as f64 + 0.1) * 10f64.powi(p as i32 * 4 - 8)).collect())
                .collect();
            let encoded: Vec<Bytes> = parts.iter().map(|p| le(p, f64::to_le_bytes)).collect();
            let expected: Vec<f64> =
                (0..elements).map(|i| parts.iter().skip(1).fold(parts[0][i], |acc, p| acc + p[i])).collect();
            let out = fold(Dtype::F64, ReduceOp::Sum, &encoded).expect("same lengths");
            assert_eq!(out, le(&expected, f64::to_le_bytes), "{elements} elements");
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let five = Bytes::from_static(&[0; 5]);
        let eight = Bytes::from_static(&[0; 8]);
        let sixteen = Bytes::from_static(&[0; 16]);
        assert_eq!(fold(Dtype::F64, ReduceOp::Sum, [&five]), Err(ReduceError::Ragged { len: 5, size: 8 }));
        assert_eq!(
            fold(Dtype::F64, ReduceOp::Sum, [&eight, &sixteen]),
            Err(ReduceError::LengthMismatch { expected: 8, found: 16 })
        );
        assert_eq!(fold(Dtype::U8, ReduceOp::Sum, []), Ok(Bytes::new()));
    }
}
