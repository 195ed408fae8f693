//! Subcommands that are not benchmarks.

pub mod attack;
pub mod compare_sim;
pub mod devnet;
pub mod doctor;
pub mod drill;
pub mod genesis;
pub mod inspect;
pub mod keygen;
pub mod loadgen;
pub mod sigverify;
pub mod sim;
pub mod verify_proof;

/// Parses a `--rate`: a positive, finite number of transactions per second. Used with
/// `allow_negative_numbers`, so `--rate -5` reaches it (and gets this range error) instead of
/// being read as an unknown flag.
///
/// # Errors
/// Not a number, or not positive and finite.
pub fn positive_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if rate > 0.0 && rate.is_finite() {
        Ok(rate)
    } else {
        Err(format!("must be a positive, finite number of transactions per second, not {text}"))
    }
}
