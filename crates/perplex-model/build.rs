//! Marks which AVX-512 paths the build host can test (tests/kernels.rs):
//! perplex-kernels' probe (crates/perplex-kernels/cpu_cfgs.rs).

include!("../perplex-kernels/cpu_cfgs.rs");

fn main() {
    emit_cpu_cfgs();
}
