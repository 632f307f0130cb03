package cie

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// fileCard answers SELECT and READ BINARY in plain for one file whose
// content is arbitrary: the card input of a file read.
type fileCard struct {
	content []byte
	apdus   int
}

func (f *fileCard) Transmit(_ context.Context, raw []byte) ([]byte, error) {
	f.apdus++
	cmd, err := apdu.ParseCommand(raw)
	if err != nil {
		return []byte{0x67, 0x00}, nil
	}
	switch cmd.INS {
	case insSelect:
		return []byte{0x90, 0x00}, nil
	case insReadBinary:
		off := int(cmd.P1)<<8 | int(cmd.P2)
		if off > len(f.content) {
			return []byte{0x6B, 0x00}, nil
		}
		end := min(off+cmd.Ne, len(f.content))
		sw := []byte{0x90, 0x00}
		if end-off < cmd.Ne {
			sw = []byte{0x62, 0x82} // end of file reached before Ne bytes
		}
		return append(bytes.Clone(f.content[off:end]), sw...), nil
	}
	return []byte{0x6D, 0x00}, nil
}

// FuzzCertificateFile reads an arbitrary EF.CertCIE the way Certificate
// does (the outer BER length decides how much is read; the file may be
// padded), parses it as X.509 and reads the holder from it: no panic, no
// endless reading, and what is returned is exactly the announced data
// object at the start of the file.
func FuzzCertificateFile(f *testing.F) {
	der := testState(f).HolderCert.Raw
	f.Add(der)
	f.Add(append(bytes.Clone(der), bytes.Repeat([]byte{0xFF}, 300)...)) // padded after the content, as on cards
	f.Add(der[:len(der)/2])                                             // shorter than it announces
	f.Add([]byte{0x30, 0x84, 0x00, 0x00, 0x7F, 0xFF, 0x30, 0x00})       // 32 KiB announced
	f.Add([]byte{0x30, 0x80, 0x30, 0x00, 0x00, 0x00})                   // indefinite length
	f.Fuzz(func(t *testing.T, content []byte) {
		fc := &fileCard{content: content}
		c := &Card{raw: fc, gr: apdu.NewGetResponse(fc), log: slog.New(slog.DiscardHandler)}
		got, err := c.readEF(context.Background(), fidCertCIE, readDER)
		if limit := len(content)/plainChunk + 3; fc.apdus > limit {
			t.Fatalf("%d APDUs to read a %d-byte file", fc.apdus, len(content))
		}
		if err != nil {
			return
		}
		n, err := berTotalLength(content)
		if err != nil || len(got) != n || !bytes.HasPrefix(content, got) {
			t.Fatalf("read %d bytes of a %d-byte file whose first object is %d bytes (%v)", len(got), len(content), n, err)
		}
		cert, err := x509.ParseCertificate(got)
		if err != nil {
			return
		}
		h := HolderFromCertificate(cert)
		for _, s := range []string{h.GivenName, h.Surname} {
			if s != "" && !strings.Contains(cert.Subject.String(), s) && !strings.Contains(string(cert.RawSubject), s) {
				t.Fatalf("holder name %q is not in the subject %q", s, cert.Subject)
			}
		}
	})
}
