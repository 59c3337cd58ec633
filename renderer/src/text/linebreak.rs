//! Line breaking: UAX #14 opportunities, first-fit, justification, hyphenation.
