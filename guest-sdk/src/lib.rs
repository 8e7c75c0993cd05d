//! Write burst work functions in Rust.
//!
//! A work function takes a deserialized input and a [`Context`], and returns
//! a serializable output; [`export_work!`] turns it into the `work` export of
//! the `burst:bcm/worker` world. Inputs and outputs cross the boundary as
//! JSON. Build the crate as a `cdylib` for `wasm32-wasip2`:
//!
//! ```ignore
//! use burst_guest_sdk::{Context, Error, export_work};
//!
//! fn work(greeting: String, ctx: &Context) -> Result<String, Error> {
//!     let sum: u64 = ctx.all_reduce(&[u64::from(ctx.worker_id())], burst_guest_sdk::ReduceOp::Sum)?[0];
//!     Ok(format!("{greeting} from {} of {} (ids sum to {sum})", ctx.worker_id(), ctx.burst_size()))
//! }
//!
//! export_work!(work);
//! ```
//!
//! Every collective must be called by every worker of the flare, in the same
//! order. Messages are raw bytes (`*_bytes` methods) or any serde type,
//! encoded compactly with postcard.

extern crate self as burst_guest_sdk;

mod context;
mod element;
mod error;
pub mod kernel;
pub mod split;
mod tree;

pub use context::Context;
pub use element::Element;
pub use error::{CommError, Error};
pub use wit::burst::bcm::types::{Dtype, PackRange, ReduceOp};

/// Tags at or above this value are reserved for the SDK's own messages.
pub const RESERVED_TAGS: u32 = 0xFFFF_0000;

#[doc(hidden)]
#[allow(missing_docs, clippy::all, unsafe_code)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "worker",
        pub_export_macro: true,
        export_macro_name: "__export_worker",
        default_bindings_module: "::burst_guest_sdk::wit",
        runtime_path: "::burst_guest_sdk::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::Context;

    /// Decodes the JSON input, runs `work`, flushes stdout, encodes its
    /// output as JSON.
    pub fn run<I, O, E, F>(input: &[u8], work: F) -> Result<Vec<u8>, String>
    where
        I: DeserializeOwned,
        O: Serialize,
        E: std::fmt::Display,
        F: FnOnce(I, &Context) -> Result<O, E>,
    {
        let input: I = serde_json::from_slice(input).map_err(|e| format!("invalid input: {e}"))?;
        let output = work(input, &Context::new());
        // A worker is not a process that exits: what `print!` left in std's
        // line buffer would never reach the host without this.
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let output = output.map_err(|e| e.to_string())?;
        serde_json::to_vec(&output).map_err(|e| format!("could not encode the output as JSON: {e}"))
    }

    /// Like [`run`], except that an input whose one key is `"kernel"` runs
    /// `kernel` on its value instead (see [`crate::kernel`]).
    pub fn run_or_kernel<I, O, E, F, S, K>(input: &[u8], work: F, kernel: K) -> Result<Vec<u8>, String>
    where
        I: DeserializeOwned,
        O: Serialize,
        E: std::fmt::Display,
        F: FnOnce(I, &Context) -> Result<O, E>,
        S: DeserializeOwned,
        K: FnOnce(S) -> Result<crate::kernel::Report, String>,
    {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Asked<S> {
            kernel: S,
        }
        // A flare's input fails this at its first key (or its first byte,
        // when it is not an object), so the check costs next to nothing.
        if serde_json::from_slice::<Asked<serde::de::IgnoredAny>>(input).is_err() {
            return run(input, work);
        }
        let Asked { kernel: spec } = serde_json::from_slice(input).map_err(|e| format!("invalid kernel input: {e}"))?;
        let report = kernel(spec)?;
        serde_json::to_vec(&report).map_err(|e| format!("could not encode the kernel's report as JSON: {e}"))
    }
}

/// Exports `$work` as the work function of this component.
///
/// `$work` has the shape `fn(In, &Context) -> Result<Out, E>` where `In:
/// DeserializeOwned`, `Out: Serialize` and `E: Display`. A JSON input that
/// does not decode as `In` fails the worker with a guest error naming it.
///
/// `export_work!(work, kernel = run)` also answers an input of the shape
/// `{"kernel": Spec}` with `run(Spec) -> Result<kernel::Report, String>`:
/// the guest's compute phase alone, for the evaluation (see [`kernel`]).
///
/// The export exists in `wasm32` builds only. Built natively, a guest crate
/// is a library (for its unit tests, or for the evaluation's native build
/// of its [`kernel`]), and two guests linked into one native binary would
/// otherwise clash on the export's symbol name.
#[macro_export]
macro_rules! export_work {
    ($work:path) => {
        $crate::export_work!(@export |input| $crate::__private::run(input, $work));
    };
    ($work:path, kernel = $kernel:path) => {
        $crate::export_work!(@export |input| $crate::__private::run_or_kernel(input, $work, $kernel));
    };
    (@export |$input:ident| $call:expr) => {
        /// The work function behind the component's export, which natively
        /// keeps the guest's code reachable (and so free of dead-code lints).
        #[doc(hidden)]
        pub fn __burst_work($input: &[u8]) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
            $call
        }

        #[cfg(target_arch = "wasm32")]
        struct __BurstWork;

        #[cfg(target_arch = "wasm32")]
        impl $crate::wit::Guest for __BurstWork {
            fn work(input: ::std::vec::Vec<u8>) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                __burst_work(&input)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::wit::__export_worker!(__BurstWork);
    };
}
