package sign

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"testing"
)

// FuzzVerifyCAdES feeds arbitrary signed files to the CMS reader, the
// verifier and the extractor: they must fail cleanly, never panic or hang.
func FuzzVerifyCAdES(f *testing.F) {
	fx := testFixture(f)
	p7m := signCAdES(f, fx, []byte("ciao"), false)
	f.Add(p7m)
	f.Add(signCAdES(f, fx, []byte("ciao"), true))
	f.Add(signCAdES(f, fx, p7m, false))
	f.Add([]byte(base64.StdEncoding.EncodeToString(p7m)))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x30, 0x80, 0, 0, 0, 0, 0, 0})
	opts := fx.verifyOpts()
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()
		if r, err := VerifyCAdES(ctx, bytes.NewReader(b), nil, opts); err == nil {
			r.Valid()
		}
		VerifyCAdES(ctx, bytes.NewReader(b), bytes.NewReader([]byte("ciao")), opts)
		Extract(ctx, io.Discard, bytes.NewReader(b))
		AddCAdES(ctx, io.Discard, bytes.NewReader(b), int64(len(b)), nil, AddOptions{Options: fx.opts(), Countersign: 1})
	})
}

// FuzzPDF feeds arbitrary PDFs to the reader, the signer's preparation
// and the verifier.
func FuzzPDF(f *testing.F) {
	fx := testFixture(f)
	doc := makePDF(f, 1, true)
	f.Add(doc)
	f.Add(signPDF(f, doc, PAdESOptions{Options: fx.opts()}))
	f.Add(xrefStreamPDF(f, makePDF(f, 2, false)))
	opts := fx.verifyOpts()
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()
		VerifyPDF(ctx, bytes.NewReader(b), int64(len(b)), opts)
		d, err := OpenPDF(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := d.Sign(ctx, &out, PAdESOptions{Options: fx.opts()}); err == nil && !bytes.HasPrefix(out.Bytes(), b) {
			t.Fatal("signing changed the original bytes")
		}
	})
}
