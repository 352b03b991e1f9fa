//! Fuzz target: any bytes as a request frame body; what decodes must re-encode and decode equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zk_gateway::jute::{decode_request, encode_request};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, req)) = decode_request(data) {
        let mut frame = Vec::new();
        encode_request(&mut frame, &header, &req);
        let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(len as usize, frame.len() - 4, "length prefix");
        let again = decode_request(&frame[4..]).expect("a re-encoded request decodes");
        assert_eq!(again, (header, req));
    }
});
