#![no_main]

#[global_allocator]
static ALLOC: perplex_fuzz::CappedAlloc = perplex_fuzz::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perplex_fuzz::parquet_documents(data);
});
