//! The annotated handler, parsed only as far as the macro needs.
//!
//! The attributes, visibility and signature are parsed; the body is kept as the verbatim `{ ... }` group. The
//! macro never looks inside the body, and not parsing it means a half-typed statement in the editor does not
//! stop the expansion: rustc reports the body's syntax error once, on the user's code, and the IDE keeps
//! completing against the expanded handler. `tokio::main` does the same for the same reason.

use proc_macro2::{Delimiter, Group, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Signature, Token, Visibility};

/// An `fn` item with its body left unparsed.
pub(crate) struct HandlerFn {
    /// Outer attributes (docs, `#[post]`, lints, ...), in order. Inner attributes stay inside `body`.
    pub(crate) attrs: Vec<Attribute>,
    /// The visibility, given to the generated handler.
    pub(crate) vis: Visibility,
    /// The signature, unchanged on the inner function.
    pub(crate) sig: Signature,
    /// The body, brace group included, exactly as written.
    pub(crate) body: Group,
}

impl Parse for HandlerFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let starts_fn = input.peek(Token![fn])
            || input.peek(Token![async])
            || input.peek(Token![const])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        if !starts_fn {
            return Err(input.error("#[idempotent] can only be applied to an async fn handler"));
        }
        let sig: Signature = input.parse()?;
        let body = match input.parse::<TokenTree>() {
            Ok(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => group,
            Ok(other) => {
                return Err(syn::Error::new(other.span(), "expected the function body `{ ... }`"));
            }
            Err(_) => {
                return Err(syn::Error::new(sig.fn_token.span, "#[idempotent] needs a function with a body"));
            }
        };
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function body"));
        }
        Ok(HandlerFn { attrs, vis, sig, body })
    }
}

impl HandlerFn {
    /// The parameter types that are the runtime's transaction (`Tx`, by the last segment of their path): such a
    /// parameter makes the route transactional (docs/contract.md, section 5).
    pub(crate) fn transaction_types(&self) -> impl Iterator<Item = &syn::Type> {
        self.sig.inputs.iter().filter_map(|input| match input {
            syn::FnArg::Typed(syn::PatType { ty, .. }) if is_transaction_type(ty) => Some(&**ty),
            _ => None,
        })
    }
}

/// `Tx`, `idempotent_runtime::Tx`, `rt::Tx`: a path whose last segment is `Tx`, without generic arguments.
fn is_transaction_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(syn::TypePath { qself: None, path, .. }) => {
            path.segments.last().is_some_and(|segment| segment.ident == "Tx" && segment.arguments.is_none())
        }
        syn::Type::Paren(paren) => is_transaction_type(&paren.elem),
        syn::Type::Group(group) => is_transaction_type(&group.elem),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::HandlerFn;
    use quote::quote;

    #[test]
    fn keeps_the_body_verbatim() {
        let handler: HandlerFn = syn::parse2(quote! {
            /// docs
            #[post("/x")]
            pub async fn f(a: u8) -> u8 { #![allow(unused)] let x = ; a }
        })
        .expect("parses without looking into the body");
        assert_eq!(handler.attrs.len(), 2);
        assert_eq!(handler.sig.ident, "f");
        assert!(handler.body.to_string().contains("# ! [allow (unused)]"));
    }

    /// The message of the error `item` must fail with.
    fn refusal(item: proc_macro2::TokenStream) -> String {
        match syn::parse2::<HandlerFn>(item) {
            Ok(_) => panic!("should be refused"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn refuses_what_is_not_a_fn() {
        assert_eq!(
            refusal(quote!(
                #[post("/")]
                struct S;
            )),
            "#[idempotent] can only be applied to an async fn handler"
        );
        assert_eq!(
            refusal(quote!(
                async fn f();
            )),
            "expected the function body `{ ... }`"
        );
        assert_eq!(refusal(quote!(async fn f())), "#[idempotent] needs a function with a body");
        assert_eq!(
            refusal(quote!(
                async fn f() {}
                fn g() {}
            )),
            "unexpected tokens after the function body"
        );
    }
}
