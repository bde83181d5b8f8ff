//! Badge rendering (owned by the renderer work).
