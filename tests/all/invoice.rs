//! The invoice-triage example end to end.
