//! The text of a caught panic, for errors and logs.
//!
//! The engine catches panics where a library it calls might panic on bad input (symphonia on a
//! malformed file, the ONNX Runtime loader on a bad library, a model thread), and the job
//! service catches them around a whole job run; all of them report the panic's message.

use std::any::Any;

/// The message a panic was raised with: `panic!("literal")` carries a `&'static str`,
/// `panic!("{x}")` a `String`; any other payload (from `std::panic::panic_any`) has no text.
///
/// Pass the payload itself (`&*payload` for a `Box<dyn Any + Send>`): a `&Box<...>` would also
/// coerce to `&dyn Any`, so a boxed payload is unwrapped here too rather than reported as
/// having no message.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(inner) = payload.downcast_ref::<Box<dyn Any + Send>>() {
        panic_message(inner.as_ref())
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};

    fn caught(f: impl FnOnce()) -> Box<dyn Any + Send> {
        catch_unwind(AssertUnwindSafe(f)).expect_err("the closure panics")
    }

    #[test]
    fn literal_formatted_and_other_payloads() {
        assert_eq!(panic_message(&*caught(|| panic!("plain"))), "plain");
        let n = 3;
        assert_eq!(
            panic_message(&*caught(|| panic!("formatted {n}"))),
            "formatted 3"
        );
        assert_eq!(panic_message(&*caught(|| panic_any(42u8))), "unknown panic");
    }

    #[test]
    fn a_boxed_payload_passed_by_reference_is_unwrapped() {
        let payload = caught(|| panic!("inside the box"));
        // The easy mistake: `&payload` is a `&Box<dyn Any + Send>`, itself an `Any`.
        assert_eq!(panic_message(&payload), "inside the box");
    }
}
