//! Client connections over `tokio::io::duplex`, with scripted nodes behind an in-memory dialer.
