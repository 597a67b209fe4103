//! Marks which AVX-512 kernels the build host can test (see cpu_cfgs.rs).

include!("cpu_cfgs.rs");

fn main() {
    emit_cpu_cfgs();
}
