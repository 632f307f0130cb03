// Package sign creates and verifies the electronic signatures a citizen
// makes with the CIE: CAdES-BES (ETSI EN 319 122-1) as attached .p7m and
// detached .p7s files, and PAdES baseline B-B (ETSI EN 319 142-1) inside
// PDF documents, over any crypto.Signer and its certificate chain (the
// card's key in the product, a software key in tests).
//
// What it owns:
//   - CMS SignedData written by hand with cryptobyte: SHA-256, signed
//     attributes content-type, message-digest, signing-time (CAdES only) and
//     ESS signing-certificate-v2. The content is hashed as a stream, and an
//     attached .p7m is written as a stream too, so a file of any size signs
//     in constant memory. Parallel signatures and counter-signatures copy the
//     earlier SignerInfos byte for byte, so earlier signatures stay valid.
//   - PDF signatures as an incremental update: the earlier bytes of the file
//     are never rewritten, the signature dictionary has /SubFilter
//     /ETSI.CAdES.detached, and an optional visible appearance shows the
//     signer's name, the date and a PNG image whose transparency is kept.
//   - Verification: integrity, the signing-certificate-v2 hash (which common
//     libraries and OpenSSL do not check), the chain to trust anchors given
//     by the caller (none given: "untrusted: no trust anchor", never
//     "valid"), the signer's name and codice fiscale, the signing time, and
//     OCSP revocation only when asked to go online ("revocation not checked"
//     otherwise).
//   - Extraction of the content of a .p7m (DER or Base64, nested or not).
//
// The package never touches the card: the card's crypto.Signer
// ((*cie.Card).Signer) is passed in. When the signer also has a
// SignContext(ctx, rand, digest, opts) method, it is called with the
// caller's context.
package sign
