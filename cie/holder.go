package cie

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
)

// Attribute types of the certificate subject (X.520).
var (
	oidGivenName    = asn1.ObjectIdentifier{2, 5, 4, 42}
	oidSurname      = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// Holder is the card holder as named by the certificate.
type Holder struct {
	GivenName  string
	Surname    string
	FiscalCode string // codice fiscale
}

// HolderFromCertificate reads the holder from the certificate subject:
// givenName (2.5.4.42), surname (2.5.4.4), and the codice fiscale from
// serialNumber (2.5.4.5) without its "TINIT-" prefix or, when absent, from
// the common name before its '/' ("<codice fiscale>/<ID_Servizi>").
func HolderFromCertificate(cert *x509.Certificate) Holder {
	var h Holder
	if cert == nil {
		return h
	}
	for _, atv := range cert.Subject.Names {
		s, ok := atv.Value.(string)
		if !ok {
			continue
		}
		switch {
		case atv.Type.Equal(oidGivenName) && h.GivenName == "":
			h.GivenName = s
		case atv.Type.Equal(oidSurname) && h.Surname == "":
			h.Surname = s
		case atv.Type.Equal(oidSerialNumber) && h.FiscalCode == "":
			h.FiscalCode = strings.TrimPrefix(s, "TINIT-")
		}
	}
	if h.FiscalCode == "" {
		cn, _, _ := strings.Cut(cert.Subject.CommonName, "/")
		h.FiscalCode = cn
	}
	return h
}
