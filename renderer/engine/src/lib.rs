//! Pressrun's composition core: versioned templates and customer records in,
//! paginated, print-ready PDF out.
//!
//! The pipeline, one module per stage with plain data between them:
//! 0. [`source`]: every file of a template (folder, bundle) through one interface,
//!    confined, size-limited and hashed;
//! 1. [`template`]: template source → checked program (once per template version);
//! 2. `bind` (in [`template`]): record → [`doc::Document`];
//! 3. [`text`]: styled spans → shaped, broken lines (cached shaping);
//! 4. [`layout`]: document → pages of positioned items ([`layout::frame`]);
//! 5. [`pdf`]: pages → print files and per-document PDFs;
//! 6. [`run`]: streams records through all of the above on every core.

pub mod assemble;
pub mod barcode;
pub mod bundle;
pub mod diag;
pub mod doc;
pub mod example_data;
pub mod image;
pub mod input;
pub mod layout;
pub mod pdf;
/// Production profile and assembly planner: documents → print jobs → mail pieces → sheets.
pub mod production;
pub mod run;
pub mod source;
pub mod style;
pub mod template;
pub mod text;
