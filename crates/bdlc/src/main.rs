//! The `bdlc` binary: placeholder while the driver is being written.

fn main() {}
