//! Examples and integration tests live beside this crate.
//!
//! Its only code is documentation compiled as doctests: Markdown of the other crates and of `docs/` whose Rust
//! blocks must keep compiling against the workspace as it is. Rustdoc compiles them as part of
//! `cargo test --workspace`, with this package's dependencies (the runtime with every feature), so no book tool
//! and no extra command are needed.

/// The `#[idempotent]` attribute's documentation (`idempotent-macros/src/idempotent.md`). The macro crate cannot
/// compile its own examples: they need the runtime, and a dev-dependency on it would make a packaging cycle.
#[cfg(doctest)]
#[doc = include_str!("../idempotent-macros/src/idempotent.md")]
pub struct AttributeDocumentation;

/// The guide's chapters (`docs/guide/`), whose Rust blocks are its examples; `tests/guide_chapters.rs` checks
/// that every chapter is here.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../docs/guide/README.md")]
    pub struct Index;
    #[doc = include_str!("../docs/guide/calling-an-api.md")]
    pub struct CallingAnApi;
    #[doc = include_str!("../docs/guide/choosing-a-store.md")]
    pub struct ChoosingAStore;
    #[doc = include_str!("../docs/guide/consumers.md")]
    pub struct Consumers;
    #[doc = include_str!("../docs/guide/contributing.md")]
    pub struct Contributing;
    #[doc = include_str!("../docs/guide/forms-and-browsers.md")]
    pub struct FormsAndBrowsers;
    #[doc = include_str!("../docs/guide/getting-started.md")]
    pub struct GettingStarted;
    #[doc = include_str!("../docs/guide/high-availability.md")]
    pub struct HighAvailability;
    #[doc = include_str!("../docs/guide/issued-keys-and-status.md")]
    pub struct IssuedKeysAndStatus;
    #[doc = include_str!("../docs/guide/openapi.md")]
    pub struct OpenApi;
    #[doc = include_str!("../docs/guide/outbox.md")]
    pub struct Outbox;
    #[doc = include_str!("../docs/guide/operating.md")]
    pub struct Operating;
    #[doc = include_str!("../docs/guide/performance.md")]
    pub struct Performance;
    #[doc = include_str!("../docs/guide/postgres-in-production.md")]
    pub struct PostgresInProduction;
    #[doc = include_str!("../docs/guide/redis.md")]
    pub struct Redis;
    #[doc = include_str!("../docs/guide/transactional-routes.md")]
    pub struct TransactionalRoutes;
    #[doc = include_str!("../docs/guide/writing-a-store.md")]
    pub struct WritingAStore;
}
