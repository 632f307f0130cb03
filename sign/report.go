package sign

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"time"
)

// State is the outcome of one check of a signature.
type State string

// The outcomes of a check.
const (
	StateOK         State = "ok"          // the check passed
	StateFailed     State = "failed"      // the check failed
	StateNotChecked State = "not checked" // the check was not made (offline, no trust anchor given)
	StateUnknown    State = "unknown"     // the check was attempted but gave no answer
)

// Finding is the outcome of one check and its explanation for the user.
type Finding struct {
	State  State  `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// String prints the finding as "state: detail".
func (f Finding) String() string {
	if f.Detail == "" {
		return string(f.State)
	}
	return string(f.State) + ": " + f.Detail
}

func ok(detail string) Finding         { return Finding{StateOK, detail} }
func failed(detail string) Finding     { return Finding{StateFailed, detail} }
func notChecked(detail string) Finding { return Finding{StateNotChecked, detail} }
func unknown(detail string) Finding    { return Finding{StateUnknown, detail} }

// Verdict sums up a signature.
type Verdict string

// The verdicts of a signature.
const (
	// VerdictValid: intact, signer's certificate protected, chain to a
	// given trust anchor, not revoked (or revocation not checked, as the
	// reason then says).
	VerdictValid Verdict = "valid"
	// VerdictInvalid: the data or the signature was altered, the signing
	// certificate attribute does not match, or the certificate is revoked.
	VerdictInvalid Verdict = "invalid"
	// VerdictUntrusted: intact, but the certificate does not chain to a
	// trust anchor (none given, or the chain fails).
	VerdictUntrusted Verdict = "untrusted"
	// VerdictIndeterminate: intact and trusted, but the revocation status
	// could not be obtained online.
	VerdictIndeterminate Verdict = "indeterminate"
)

// Identity is the signer as named by the certificate.
type Identity struct {
	Name         string    `json:"name"`
	GivenName    string    `json:"given_name,omitempty"`
	Surname      string    `json:"surname,omitempty"`
	FiscalCode   string    `json:"fiscal_code,omitempty"` // codice fiscale
	Subject      string    `json:"subject"`
	Issuer       string    `json:"issuer"`
	SerialNumber string    `json:"serial_number"`
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
}

// Signature is the verification of one signature (a SignerInfo).
type Signature struct {
	// ID numbers the signature: "1", "2" in file order, "1.1" for the first
	// counter-signature of signature 1.
	ID      string  `json:"id"`
	Verdict Verdict `json:"verdict"`
	// Reason explains the verdict in one line, e.g. "untrusted: no trust anchor".
	Reason string   `json:"reason"`
	Signer Identity `json:"signer"`
	// SigningTime is the time the signer's computer claimed; no time-stamp
	// proves it. Nil when the signature carries none.
	SigningTime       *time.Time `json:"signing_time,omitempty"`
	SigningTimeSource string     `json:"signing_time_source,omitempty"`
	DigestAlgorithm   string     `json:"digest_algorithm"`
	// Integrity: the data and the signed attributes are exactly what was signed.
	Integrity Finding `json:"integrity"`
	// SigningCertificate: the ESS signing-certificate(-v2) attribute names
	// the certificate that verifies the signature (CAdES-BES).
	SigningCertificate Finding `json:"signing_certificate"`
	// Chain: the certificate chains to a trust anchor.
	Chain Finding `json:"chain"`
	// Revocation: OCSP status, only when verifying online.
	Revocation Finding `json:"revocation"`
	// Warnings are remarks that do not change the verdict.
	Warnings []string `json:"warnings,omitempty"`
	// PDF describes a PAdES signature's place in the document.
	PDF *PDFSignature `json:"pdf,omitempty"`
	// Countersignatures are the counter-signatures of this signature.
	Countersignatures []*Signature `json:"countersignatures,omitempty"`
	// Certificate is the signer's certificate (nil when not found).
	Certificate *x509.Certificate `json:"-"`
}

// PDFSignature is where a PAdES signature sits in the PDF.
type PDFSignature struct {
	Field     string   `json:"field"`
	SubFilter string   `json:"sub_filter"`
	ByteRange [4]int64 `json:"byte_range"`
	// CoversWholeDocument is false when the document was changed (by
	// incremental updates, e.g. a later signature) after this signature.
	CoversWholeDocument bool `json:"covers_whole_document"`
	// Revision is the revision this signature signs (1 = original file).
	Revision int `json:"revision"`
	// Revisions is the number of revisions of the document.
	Revisions int `json:"revisions"`
}

// Format names the kind of signed file.
type Format string

// The formats VerifyCAdES and VerifyPDF report.
const (
	FormatCAdESAttached Format = "CAdES (.p7m, content attached)"
	FormatCAdESDetached Format = "CAdES (.p7s, detached)"
	FormatPAdES         Format = "PAdES (signed PDF)"
)

// Report is the verification of a signed file.
type Report struct {
	Format     Format       `json:"format"`
	Signatures []*Signature `json:"signatures"`
	// ContentSize is the size of the signed content (attached or given).
	ContentSize int64 `json:"content_size"`
	// Nested is the verification of the content when it is itself a
	// signed file (a .p7m inside a .p7m).
	Nested *Report `json:"nested,omitempty"`
	// NestedError says why content that looks like a signed file could
	// not be verified.
	NestedError string `json:"nested_error,omitempty"`
}

// Valid reports whether the file has at least one signature and every
// signature, counter-signature and nested signature is valid.
func (r *Report) Valid() bool {
	if r == nil || len(r.Signatures) == 0 {
		return false
	}
	var all func([]*Signature) bool
	all = func(list []*Signature) bool {
		for _, s := range list {
			if s.Verdict != VerdictValid || !all(s.Countersignatures) {
				return false
			}
		}
		return true
	}
	if !all(r.Signatures) {
		return false
	}
	return r.Nested == nil || r.Nested.Valid()
}

// X.520 attribute types of the Italian signature certificates.
var (
	oidGivenName    = asn1.ObjectIdentifier{2, 5, 4, 42}
	oidSurname      = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// IdentityOf reads the signer from a certificate: given name and surname,
// and the codice fiscale from serialNumber ("TINIT-<cf>" in the CIE and in
// ETSI EN 319 412-1 certificates, "IT:<cf>" in older Italian ones) or from
// a common name "<cf>/<id>".
func IdentityOf(cert *x509.Certificate) Identity {
	id := Identity{
		Subject:      cert.Subject.String(),
		Issuer:       cert.Issuer.String(),
		SerialNumber: serialString(cert.SerialNumber),
		NotBefore:    cert.NotBefore,
		NotAfter:     cert.NotAfter,
	}
	for _, atv := range cert.Subject.Names {
		s, isString := atv.Value.(string)
		if !isString {
			continue
		}
		switch {
		case atv.Type.Equal(oidGivenName) && id.GivenName == "":
			id.GivenName = s
		case atv.Type.Equal(oidSurname) && id.Surname == "":
			id.Surname = s
		case atv.Type.Equal(oidSerialNumber) && id.FiscalCode == "":
			for _, prefix := range []string{"TINIT-", "IT:"} {
				if cf, found := strings.CutPrefix(s, prefix); found && isFiscalCode(cf) {
					id.FiscalCode = cf
				}
			}
		}
	}
	if id.FiscalCode == "" {
		if cf, _, _ := strings.Cut(cert.Subject.CommonName, "/"); isFiscalCode(cf) {
			id.FiscalCode = cf
		}
	}
	id.Name = strings.TrimSpace(id.GivenName + " " + id.Surname)
	if id.Name == "" {
		id.Name = cert.Subject.CommonName
	}
	return id
}

// isFiscalCode reports whether s has the shape of a codice fiscale of a
// person (16 letters and digits) or a company (11 digits).
func isFiscalCode(s string) bool {
	if len(s) != 16 && len(s) != 11 {
		return false
	}
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
