//! Fuzz target: any bytes as a ConnectRequest body; what decodes must re-encode and decode equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zk_gateway::jute::{decode_connect, encode_connect_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_connect(data) {
        let mut frame = Vec::new();
        encode_connect_request(&mut frame, &req);
        let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(len as usize, frame.len() - 4, "length prefix");
        let again = decode_connect(&frame[4..]).expect("a re-encoded ConnectRequest decodes");
        assert_eq!(again, req);
    }
});
