//! Generates src/tree/zero_cvs.bin: the BLAKE3 chaining values of the
//! all-zero 16 MiB blocks of the first 64 GiB of a file (see
//! src/tree/hasher.rs), and prints the table's BLAKE3 for zero_cvs.b3.
//!
//!     cargo run --release --example zero_cvs -- src/tree/zero_cvs.bin
//!
//! About 64 GiB of hashing: a minute or so on two cores.

use std::sync::atomic::{AtomicU64, Ordering};

use dockroot::tree::hasher::{TABLE_BLOCKS as BLOCKS, compute_zero_cv};

fn main() {
    let out = std::env::args().nth(1).expect("usage: zero_cvs OUTPUT");
    let next = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut table = vec![[0u8; 32]; BLOCKS as usize];
    let parts: Vec<Vec<(u64, [u8; 32])>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= BLOCKS {
                            return got;
                        }
                        got.push((i, compute_zero_cv(i)));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    for (i, cv) in parts.into_iter().flatten() {
        table[i as usize] = cv;
    }
    let bytes: Vec<u8> = table.concat();
    std::fs::write(&out, &bytes).expect("write the table");
    println!("{}", blake3::hash(&bytes).to_hex());
}
