//! The fault switch of test builds (feature `fault-switch`): misbehaviour on
//! demand, so that the host's sandbox can be shown to contain it. The
//! shipped component is built without it.

/// Misbehaves as the connection's name asks: `fault: loop` spins forever,
/// `fault: allocate` allocates until memory runs out, `fault: panic` panics.
/// Any other name: returns.
pub fn trip(connection_name: &str) {
    match connection_name.strip_prefix("fault: ") {
        Some("loop") => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Some("allocate") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![0x5a; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Some("panic") => panic!("the fault switch asked for a panic"),
        _ => {}
    }
}
