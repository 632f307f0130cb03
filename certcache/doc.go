// Package certcache owns the on-disk cache of CIE holder certificates that
// lets the PKCS#11 module (and the CLI's pair/unpair) show a card's
// certificate and public key without asking for the PIN.
//
// The card releases its certificate (EF.CertCIE) only after the PIN was
// verified, but browsers list client certificates before any login
// (testbench.md §3.8). So the first successful login stores the
// certificate here, and later insertions of the same card read it back.
//
// What is stored: the certificate, nothing else — never PIN digits (the
// official middleware stores the first half of the PIN, cie-protocol.md
// §9.2 and §13 item 12). Each entry is bound to its card: the key is
// derived from the card's answer to INTERNAL AUTHENTICATE with the servizi
// key 0x83 over the card's PAN (§9.2): S = SHA-512(signature), AES-256 key
// S[0:32], IV S[32:48], as the reference does; in addition S[48:64] keys an
// HMAC-SHA256 over the whole file, so that a tampered or foreign entry is
// rejected instead of decrypting to garbage. Without the card the entry is
// unreadable; with the card anyone could read it, which is acceptable for a
// certificate (it is public by nature: it is sent in every TLS handshake).
//
// Layout on disk: one file per card, "<PAN>.cert", in a 0700 directory
// (DefaultDir: os.UserConfigDir()/cie-desktop/certs), mode 0600, written
// atomically (temporary file, fsync, rename). File format, all integers
// big-endian:
//
//	magic   "CIECERT" 0x01     8 bytes
//	idLen   1 byte, then the card id (the PAN, ASCII)
//	ctLen   4 bytes, then AES-256-CBC(key, IV, ISO 9797-1 method 2 padding(DER))
//	mac     HMAC-SHA256(S[48:64], everything above), 32 bytes
//
// An entry that cannot be read back (bad MAC, bad padding, not a
// certificate) is reported as ErrCorrupt; callers ignore it and overwrite
// it at the next successful login.
package certcache
