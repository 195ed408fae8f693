//! The prefilter's checks over column arrays: a SIMD kernel (`wide`, four u64 lanes) and the
//! scalar reference it must match row for row.
//!
//! Each row gets an outcome code: 0 passes, otherwise `1 + index` of the first failing check
//! in [`CHECKS`] order. The SIMD kernel evaluates every check for four rows at once and picks
//! the lowest failing bit per lane; the scalar reference stops at the first failing check.
//! `wide` selects AVX2 instructions when the crate is compiled with AVX2 enabled (the project's
//! `.cargo/config.toml` targets x86-64-v3) and portable code otherwise; both are tested.

use wide::u64x4;

/// The checks, in the order their refusals are reported.
pub const CHECKS: [&str; 7] = [
    "wrong_chain",
    "nonzero_reserved",
    "fee_too_low",
    "zero_amount",
    "self_transfer",
    "nonce_stale",
    "nonce_too_far",
];

/// Policy the checks compare against.
#[derive(Clone, Copy, Debug)]
pub struct PrefilterParams {
    /// Required chain id.
    pub chain_id: u64,
    /// Lowest acceptable fee.
    pub fee_floor: u64,
    /// Nonces must lie in `[account nonce, account nonce + nonce_window)`.
    pub nonce_window: u64,
}

/// One column per checked field; row `i` of every column is transaction `i`.
#[derive(Clone, Debug, Default)]
pub struct PrefilterColumns {
    /// `chain_id`, widened.
    pub chain_id: Vec<u64>,
    /// `reserved`, widened.
    pub reserved: Vec<u64>,
    /// `fee`.
    pub fee: Vec<u64>,
    /// `amount`.
    pub amount: Vec<u64>,
    /// 1 if sender equals recipient, else 0.
    pub self_transfer: Vec<u64>,
    /// `nonce`.
    pub nonce: Vec<u64>,
    /// The sender account's executed nonce.
    pub account_nonce: Vec<u64>,
}

/// One row, as pushed into [`PrefilterColumns`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PrefilterRow {
    /// `chain_id`.
    pub chain_id: u64,
    /// `reserved`.
    pub reserved: u64,
    /// `fee`.
    pub fee: u64,
    /// `amount`.
    pub amount: u64,
    /// 1 if sender equals recipient.
    pub self_transfer: u64,
    /// `nonce`.
    pub nonce: u64,
    /// The sender's executed nonce.
    pub account_nonce: u64,
}

impl PrefilterColumns {
    /// Empties every column, keeping capacity.
    pub fn clear(&mut self) {
        for column in self.columns_mut() {
            column.clear();
        }
    }

    fn columns_mut(&mut self) -> [&mut Vec<u64>; 7] {
        [
            &mut self.chain_id,
            &mut self.reserved,
            &mut self.fee,
            &mut self.amount,
            &mut self.self_transfer,
            &mut self.nonce,
            &mut self.account_nonce,
        ]
    }

    /// Appends a row.
    pub fn push(&mut self, row: PrefilterRow) {
        self.chain_id.push(row.chain_id);
        self.reserved.push(row.reserved);
        self.fee.push(row.fee);
        self.amount.push(row.amount);
        self.self_transfer.push(row.self_transfer);
        self.nonce.push(row.nonce);
        self.account_nonce.push(row.account_nonce);
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.chain_id.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.chain_id.is_empty()
    }

    fn row(&self, i: usize) -> PrefilterRow {
        PrefilterRow {
            chain_id: self.chain_id[i],
            reserved: self.reserved[i],
            fee: self.fee[i],
            amount: self.amount[i],
            self_transfer: self.self_transfer[i],
            nonce: self.nonce[i],
            account_nonce: self.account_nonce[i],
        }
    }
}

/// The scalar reference for one row: the first failing check's code, or 0.
pub fn check_row(row: &PrefilterRow, params: &PrefilterParams) -> u8 {
    if row.chain_id != params.chain_id {
        1
    } else if row.reserved != 0 {
        2
    } else if row.fee < params.fee_floor {
        3
    } else if row.amount == 0 {
        4
    } else if row.self_transfer != 0 {
        5
    } else if row.nonce < row.account_nonce {
        6
    } else if row.nonce - row.account_nonce >= params.nonce_window {
        7
    } else {
        0
    }
}

/// Scalar reference over columns.
///
/// # Panics
/// If `codes.len()` differs from the row count (a caller bug).
pub fn check_scalar(columns: &PrefilterColumns, params: &PrefilterParams, codes: &mut [u8]) {
    assert_eq!(codes.len(), columns.len(), "one code per row");
    for (i, code) in codes.iter_mut().enumerate() {
        *code = check_row(&columns.row(i), params);
    }
}

fn lanes(column: &[u64], at: usize) -> u64x4 {
    let chunk: [u64; 4] = column[at..at + 4].try_into().expect("four lanes");
    u64x4::from(chunk)
}

/// The SIMD kernel: four rows per step, then the scalar reference for the tail.
///
/// # Panics
/// If `codes.len()` differs from the row count (a caller bug).
pub fn check_simd(columns: &PrefilterColumns, params: &PrefilterParams, codes: &mut [u8]) {
    assert_eq!(codes.len(), columns.len(), "one code per row");
    let rows = columns.len();
    let full = rows - rows % 4;
    let zero = u64x4::splat(0);
    let chain_id = u64x4::splat(params.chain_id);
    let fee_floor = u64x4::splat(params.fee_floor);
    let window = u64x4::splat(params.nonce_window);
    let bit = |n: u32| u64x4::splat(1 << n);
    for at in (0..full).step_by(4) {
        let nonce = lanes(&columns.nonce, at);
        let account_nonce = lanes(&columns.account_nonce, at);
        let stale = nonce.simd_lt(account_nonce);
        // Wrapping difference; only meaningful where the nonce is not stale, hence the mask.
        let ahead = nonce - account_nonce;
        let failed = (lanes(&columns.chain_id, at).simd_ne(chain_id) & bit(0))
            | (lanes(&columns.reserved, at).simd_ne(zero) & bit(1))
            | (lanes(&columns.fee, at).simd_lt(fee_floor) & bit(2))
            | (lanes(&columns.amount, at).simd_eq(zero) & bit(3))
            | (lanes(&columns.self_transfer, at).simd_ne(zero) & bit(4))
            | (stale & bit(5))
            | (ahead.simd_ge(window) & !stale & bit(6));
        for (lane, bits) in failed.to_array().into_iter().enumerate() {
            codes[at + lane] = if bits == 0 { 0 } else { bits.trailing_zeros() as u8 + 1 };
        }
    }
    for (i, code) in codes.iter_mut().enumerate().skip(full) {
        *code = check_row(&columns.row(i), params);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn small() -> impl Strategy<Value = u64> {
        // Values near the boundaries the checks compare against, plus extremes.
        prop_oneof![0u64..6, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()]
    }

    fn row() -> impl Strategy<Value = PrefilterRow> {
        (small(), 0u64..2, small(), small(), 0u64..2, small(), small()).prop_map(
            |(chain_id, reserved, fee, amount, self_transfer, nonce, account_nonce)| PrefilterRow {
                chain_id,
                reserved,
                fee,
                amount,
                self_transfer,
                nonce,
                account_nonce,
            },
        )
    }

    proptest! {
        #[test]
        fn simd_matches_scalar(
            rows in prop::collection::vec(row(), 0..67),
            chain_id in 0u64..3,
            fee_floor in 0u64..4,
            nonce_window in prop_oneof![1u64..5, Just(u64::MAX)],
        ) {
            let params = PrefilterParams { chain_id, fee_floor, nonce_window };
            let mut columns = PrefilterColumns::default();
            for row in &rows {
                columns.push(*row);
            }
            let mut scalar = vec![0; rows.len()];
            let mut simd = vec![9; rows.len()];
            check_scalar(&columns, &params, &mut scalar);
            check_simd(&columns, &params, &mut simd);
            prop_assert_eq!(scalar, simd);
        }
    }

    #[test]
    fn codes_follow_check_order() {
        let params = PrefilterParams { chain_id: 1, fee_floor: 2, nonce_window: 10 };
        let good = PrefilterRow {
            chain_id: 1,
            reserved: 0,
            fee: 2,
            amount: 1,
            self_transfer: 0,
            nonce: 5,
            account_nonce: 5,
        };
        let cases = [
            (PrefilterRow { chain_id: 2, fee: 0, ..good }, 1),
            (PrefilterRow { reserved: 1, ..good }, 2),
            (PrefilterRow { fee: 1, amount: 0, ..good }, 3),
            (PrefilterRow { amount: 0, ..good }, 4),
            (PrefilterRow { self_transfer: 1, ..good }, 5),
            (PrefilterRow { nonce: 4, ..good }, 6),
            (PrefilterRow { nonce: 15, ..good }, 7),
            (PrefilterRow { nonce: 14, ..good }, 0),
        ];
        let mut columns = PrefilterColumns::default();
        for (row, _) in &cases {
            columns.push(*row);
        }
        let mut codes = vec![0; cases.len()];
        check_simd(&columns, &params, &mut codes);
        let expected: Vec<u8> = cases.iter().map(|(_, code)| *code).collect();
        assert_eq!(codes, expected);
        assert_eq!(CHECKS.len(), 7);
    }
}
