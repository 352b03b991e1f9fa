//! Client and peer listeners: TCP, TLS, HTTP gateway (being written).
