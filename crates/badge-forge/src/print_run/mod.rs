//! Print runs of the real attendees, for `badge-forge sheet` and the [`worker::PrintRun`]
//! worker: rows from an attendee list ([`input`]) or from the completed badge jobs in the
//! database ([`completed`]), each read as a GenerateBadge job's args, put in the order a
//! registration desk needs ([`order`]) and imposed on label stock ([`sheet`]).

pub mod completed;
pub mod input;
pub mod order;
pub mod sheet;
pub mod worker;
