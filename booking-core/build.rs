//! Build script: tells Cargo to rebuild `booking-core` whenever anything under the
//! workspace's `migrations/` directory changes (it does nothing else).
// The migrations are embedded at compile time: rebuild when one changes.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
