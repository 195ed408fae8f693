//! `tessera sigverify`: check signatures by hand under the node's accept rule.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use tessera_systems::kernels::sigverify::{VerifyItem, check_detailed, refusal_of_refused, verify_many};

use crate::InputError;

/// Arguments of `tessera sigverify`.
#[derive(Debug, Args)]
pub struct SigverifyArgs {
    /// JSON Lines file: one object per line with hex fields `pk`, `msg` and `sig` (other fields
    /// are ignored). Prints `accept` or `reject <reason>` per line, in order.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Verification path; both give identical verdicts.
    #[arg(long, value_enum, default_value_t = Mode::Single)]
    pub mode: Mode,
    /// Signatures per batch in batch mode.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub batch_size: u64,
}

/// How to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One signature at a time.
    Single,
    /// Batches on all cores, bisected on failure.
    Batch,
}

#[derive(Deserialize)]
struct Line {
    pk: String,
    msg: String,
    sig: String,
}

/// A parsed line: either bytes of the right lengths, or a length refusal.
enum Parsed {
    Item { public_key: [u8; 32], message: Vec<u8>, signature: [u8; 64] },
    Refused(&'static str),
}

fn parse(number: usize, text: &str) -> Result<Parsed, InputError> {
    let line: Line = serde_json::from_str(text).map_err(|error| {
        InputError(format!("line {number}: not a JSON object with pk, msg and sig: {error}"))
    })?;
    let decode = |field: &str, value: &str| {
        hex::decode(value)
            .map_err(|error| InputError(format!("line {number}: field {field}: invalid hex: {error}")))
    };
    let public_key = decode("pk", &line.pk)?;
    let message = decode("msg", &line.msg)?;
    let signature = decode("sig", &line.sig)?;
    let Ok(public_key) = <[u8; 32]>::try_from(public_key.as_slice()) else {
        return Ok(Parsed::Refused("bad_key_length"));
    };
    let Ok(signature) = <[u8; 64]>::try_from(signature.as_slice()) else {
        return Ok(Parsed::Refused("bad_signature_length"));
    };
    Ok(Parsed::Item { public_key, message, signature })
}

/// Reads, verifies and prints.
///
/// # Errors
/// [`InputError`] (exit status 2) for an unreadable file or a malformed line, naming the line.
pub fn run(args: &SigverifyArgs) -> Result<(), Box<dyn std::error::Error>> {
    let text = crate::read_input_file(&args.input, crate::LARGE_FILE_BYTES_MAX)
        .map_err(|error| InputError(format!("cannot read {}: {error}", args.input.display())))?;
    let parsed: Vec<Parsed> =
        text.lines().enumerate().map(|(index, line)| parse(index + 1, line)).collect::<Result<_, _>>()?;
    let items: Vec<VerifyItem<'_>> = parsed
        .iter()
        .filter_map(|parsed| match parsed {
            Parsed::Item { public_key, message, signature } => {
                Some(VerifyItem { public_key, message, signature })
            }
            Parsed::Refused(_) => None,
        })
        .collect();
    let verdicts: Vec<Result<(), String>> = match args.mode {
        Mode::Single => {
            items.iter().map(|item| check_detailed(item).map_err(|refusal| refusal.to_string())).collect()
        }
        Mode::Batch => {
            let mut accepted = vec![false; items.len()];
            let batch_size = usize::try_from(args.batch_size).expect("range-checked by clap");
            verify_many(&items, &mut accepted, batch_size);
            items
                .iter()
                .zip(accepted)
                .map(|(item, ok)| if ok { Ok(()) } else { Err(refusal_of_refused(item).to_string()) })
                .collect()
        }
    };
    let mut verdicts = verdicts.into_iter();
    let mut out = String::new();
    for parsed in &parsed {
        let verdict = match parsed {
            Parsed::Refused(reason) => Err((*reason).to_owned()),
            Parsed::Item { .. } => verdicts.next().expect("one verdict per item"),
        };
        match verdict {
            Ok(()) => out.push_str("accept\n"),
            Err(reason) => {
                out.push_str("reject ");
                out.push_str(&reason);
                out.push('\n');
            }
        }
    }
    print!("{out}");
    Ok(())
}
