//! Collects independent errors so one compile reports all of them.
//!
//! A user who wrote `ttl = "24"` and `scope = "users"` should see both mistakes at once, not fix one and recompile
//! to discover the next. Each check pushes its error here and keeps going; the errors are joined with
//! [`syn::Error::combine`] at the end, the way `serde_derive`'s `Ctxt` does.

/// An accumulator of `syn::Error`s.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    /// All errors so far, combined into one (a `syn::Error` holds a list).
    combined: Option<syn::Error>,
}

impl Errors {
    /// Records one error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// Records the error of `result`, if any, and returns its value otherwise.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// Ends collection: `value` if neither it nor anything recorded before failed, else every error together.
    pub(crate) fn finish<T>(mut self, value: syn::Result<T>) -> syn::Result<T> {
        let value = self.ok(value);
        match (self.combined, value) {
            (Some(error), _) => Err(error),
            (None, Some(value)) => Ok(value),
            // `ok` records the error of a failed `value`, so this arm only keeps the match total.
            (None, None) => Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[idempotent] failed without a message; please report this",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Errors;
    use proc_macro2::Span;

    fn error(message: &str) -> syn::Error {
        syn::Error::new(Span::call_site(), message)
    }

    fn messages(error: syn::Error) -> Vec<String> {
        error.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn nothing_recorded_gives_the_value() {
        assert_eq!(Errors::default().finish(Ok(7)).unwrap(), 7);
    }

    #[test]
    fn recorded_errors_win_over_the_value() {
        let mut errors = Errors::default();
        errors.push(error("a"));
        assert_eq!(errors.ok::<()>(Err(error("b"))), None);
        assert_eq!(errors.ok(Ok(1)), Some(1));
        let err = errors.finish(Err::<(), _>(error("c"))).unwrap_err();
        assert_eq!(messages(err), ["a", "b", "c"]);
    }

    #[test]
    fn a_failed_value_alone_is_reported() {
        let err = Errors::default().finish(Err::<(), _>(error("only"))).unwrap_err();
        assert_eq!(messages(err), ["only"]);
    }
}
