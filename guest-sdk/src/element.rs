//! Numeric element types of the host-native reductions.

use crate::Dtype;

mod sealed {
    pub trait Sealed {}
}

/// A number the host can reduce element-wise ([`Context::reduce`](crate::Context::reduce)).
pub trait Element: Copy + sealed::Sealed {
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

pub(crate) fn to_le<E: Element>(values: &[E]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * E::SIZE);
    for &v in values {
        v.write_le(&mut out);
    }
    out
}

pub(crate) fn from_le<E: Element>(bytes: &[u8]) -> Vec<E> {
    bytes.chunks_exact(E::SIZE).map(E::read_le).collect()
}
