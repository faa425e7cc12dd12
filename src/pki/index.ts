// Fleet certificates (minimal): an ECDSA P-256 CA, node certificates for relay peers (and later the control plane),
// reading and checking them, and the TLS options mTLS servers and clients are built from.
export {};
