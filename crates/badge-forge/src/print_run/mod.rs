//! Print runs of the real attendees: reading an attendee list ([`input`]) for `badge-forge
//! sheet --input`, each row read as a GenerateBadge job's args, and putting it in the order
//! a registration desk needs ([`order`]).

pub mod input;
pub mod order;
