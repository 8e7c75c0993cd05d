//! Numeric element types of the host-native reductions.
//!
//! The host reduces little-endian arrays. On a little-endian target (every
//! `wasm32` one) a slice of numbers already is that array, so it is handed
//! to the host as it lies in memory and the result is taken back with one
//! copy, instead of being converted element by element both ways.

use std::borrow::Cow;

use crate::Dtype;

mod sealed {
    pub trait Sealed {}
}

/// A number the host can reduce element-wise ([`Context::reduce`](crate::Context::reduce)).
pub trait Element: bytemuck::Pod + sealed::Sealed {
    /// The WIT element type.
    const DTYPE: Dtype;
    /// Size in bytes.
    const SIZE: usize;
    /// Appends the little-endian bytes of `self`.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads one element from exactly [`Self::SIZE`] little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($($t:ty => $dtype:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: Dtype = Dtype::$dtype;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                let mut raw = [0; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }
        }
    )*};
}

element!(u8 => U8, i32 => I32, u32 => U32, i64 => I64, u64 => U64, f32 => F32, f64 => F64);

/// The little-endian bytes of `values`: the slice itself where the target
/// is little-endian.
pub(crate) fn to_le<E: Element>(values: &[E]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        return Cow::Borrowed(bytemuck::cast_slice(values));
    }
    let mut out = Vec::with_capacity(values.len() * E::SIZE);
    for &v in values {
        v.write_le(&mut out);
    }
    Cow::Owned(out)
}

/// The numbers in little-endian `bytes` (whole elements: the host checked).
pub(crate) fn from_le<E: Element>(bytes: &[u8]) -> Vec<E> {
    let whole = &bytes[..bytes.len() - bytes.len() % E::SIZE];
    if cfg!(target_endian = "little") {
        // One copy into memory aligned for `E` (the host's buffer need not be).
        return bytemuck::pod_collect_to_vec(whole);
    }
    whole.chunks_exact(E::SIZE).map(E::read_le).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_their_little_endian_bytes() {
        let values = [1.5f64, -0.0, f64::MAX, 3e-300];
        let bytes = to_le(&values);
        let expected: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(&*bytes, expected.as_slice());
        assert_eq!(from_le::<f64>(&bytes), values);
        // Unaligned input, as a host buffer may be.
        let mut shifted = vec![0u8];
        shifted.extend(u32::MAX.to_le_bytes());
        shifted.extend(7u32.to_le_bytes());
        assert_eq!(from_le::<u32>(&shifted[1..]), [u32::MAX, 7]);
    }
}
