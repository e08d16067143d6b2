//! The compiled row validator (spec §7.1–§7.2). Being written.
