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
//
// # Card records and readers
//
// Deriving the key above costs the card 4 to 6 APDUs, and opening the card
// and reading its public data (family, EF.SN.ICC, EF.ID_Servizi, DH group,
// IFD-CA key, EF.Int.Kpub) 17 more, at every start of every browser. So
// the cache also keeps, per card, a record "<PAN>.card" (Record): the
// card's cie.Profile, the certificate once paired, the last PIN and PUK
// try counters the module saw, and the reader the card was last seen in
// with the ATR it showed there (SetReader, ReaderRecord). A process that
// finds that reader showing that ATR presents the recorded card without
// any APDU, and the first operation that needs the card opens it with
// cie.OpenProfile (a login: SELECT CIE, DH, DAPP, VERIFY). Still one file
// per card: ReaderRecord reads the records (a user has few cards).
//
// Records hold public data only, in clear, framed as magic ‖ JSON ‖
// SHA-256 (the checksum detects damage; it authenticates nothing), with
// the modes and atomic writes above. What they are trusted with: to name
// the card and show its certificate before the card is used (a wrong
// certificate makes every signature fail the module's check against it),
// and to run the handshake, in which the card checks the DH group and the
// IFD-CA key itself and device authentication checks that the chip is the
// recorded one (its serial number, its key 0x82). Cards of one family
// share their ATR: a card swapped while no process watched is found out at
// that first use (cie.ErrCardChanged). A damaged record is ErrCorrupt and
// the card is read as if it had none. Unlike the encrypted entry, a record
// is readable without the card: whoever reads the user's files learns the
// holder's certificate (name, codice fiscale), which is public by nature
// (sent in every TLS client authentication) but personal.
package certcache
