//! XDM (Experience Data Model): registry resources, resolution into the full form, and the
//! compiled row validator that ingestion uses (spec §5, §7).

pub mod registry;
pub mod resolve;
pub mod validate;
