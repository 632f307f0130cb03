package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// PDF is a parsed PDF document, ready to be signed.
type PDF struct {
	f     *pdfFile
	pages []pageInfo
}

// OpenPDF reads the structure of the PDF in r (size bytes): its
// cross-reference sections, catalog and page tree. It fails on files it
// cannot sign — encrypted, damaged cross-references, no pages — so a
// caller can refuse before asking for the PIN.
func OpenPDF(r io.ReaderAt, size int64) (*PDF, error) {
	f, err := openPDFFile(r, size)
	if err != nil {
		return nil, err
	}
	pages, err := f.pages()
	if err != nil {
		return nil, err
	}
	d := &PDF{f: f, pages: pages}
	if err := d.checkDocMDP(); err != nil {
		return nil, err
	}
	return d, nil
}

// ErrCertifiedPDF: the document carries a certification signature that
// allows no change at all (DocMDP permission 1), not even a signature.
var ErrCertifiedPDF = errors.New("sign: the document is certified by its author and allows no changes, not even a signature")

// checkDocMDP refuses documents whose certification signature (the
// catalog's /Perms /DocMDP, ISO 32000-1 §12.8.2.2) forbids any change: a
// new signature would invalidate it.
func (d *PDF) checkDocMDP() error {
	cat, _, err := d.f.catalog()
	if err != nil {
		return err
	}
	perms, err := d.f.dict(cat.get("Perms"))
	if err != nil || perms == nil {
		return err
	}
	sig, err := d.f.dict(perms.get("DocMDP"))
	if err != nil || sig == nil {
		return err
	}
	refs, err := d.f.resolve(sig.get("Reference"))
	if err != nil {
		return err
	}
	arr, _ := refs.(pdfArray)
	for _, r := range arr {
		rd, err := d.f.dict(r)
		if err != nil || rd == nil || rd.get("TransformMethod") != pdfName("DocMDP") {
			continue
		}
		params, err := d.f.dict(rd.get("TransformParams"))
		if err != nil {
			return err
		}
		if p, _ := params.get("P").(int64); p == 1 {
			return ErrCertifiedPDF
		}
	}
	return nil
}

// NumPages returns the number of pages.
func (d *PDF) NumPages() int { return len(d.pages) }

// PageSize returns the width and height in points of the visible area of
// page n (from 1).
func (d *PDF) PageSize(n int) (w, h float64, err error) {
	if n < 1 || n > len(d.pages) {
		return 0, 0, fmt.Errorf("sign: no page %d (the document has %d)", n, len(d.pages))
	}
	b := d.pages[n-1].box
	return b[2] - b[0], b[3] - b[1], nil
}

// PAdESOptions configure (*PDF).Sign.
type PAdESOptions struct {
	Options
	// Visible places a visible signature; nil makes it invisible.
	Visible *Appearance
	// Reason, Location and ContactInfo are optional entries of the
	// signature dictionary.
	Reason, Location, ContactInfo string
}

// Placeholders of the signature dictionary, filled in once the update is
// laid out.
const byteRangeWidth = 10 // digits per ByteRange number (files below 10 GB)

// Sign appends a PAdES baseline B-B signature (ETSI EN 319 142-1) to the
// document as an incremental update and writes the whole signed file to w:
// the original bytes unchanged, then the update. The signature dictionary
// has /SubFilter /ETSI.CAdES.detached and the signing time in /M; the CMS
// has content-type, message-digest and signing-certificate-v2 and no
// signing-time. A second signature made the same way leaves the first one
// valid. The original is read twice (to hash it, to copy it) and never
// held in memory.
func (d *PDF) Sign(ctx context.Context, w io.Writer, opts PAdESOptions) error {
	k, err := opts.key()
	if err != nil {
		return err
	}
	now := opts.now()
	f := d.f
	inc, err := newIncrement(f)
	if err != nil {
		return err
	}
	pageNo := 1
	if opts.Visible != nil {
		pageNo = opts.Visible.Page
		if pageNo < 1 || pageNo > len(d.pages) {
			return fmt.Errorf("sign: no page %d (the document has %d)", pageNo, len(d.pages))
		}
		r := opts.Visible.Rect
		if r.W < 1 || r.H < 1 {
			return fmt.Errorf("sign: the signature rectangle %gx%g is too small", r.W, r.H)
		}
	}
	page := d.pages[pageNo-1]
	cat, rootRef, err := f.catalog()
	if err != nil {
		return err
	}

	// The signature dictionary, with placeholders.
	placeholder, err := cmsSizeEstimate(k, opts.Chain)
	if err != nil {
		return err
	}
	sigRef := inc.alloc()
	sig := newDict()
	sig.set("Type", pdfName("Sig"))
	sig.set("Filter", pdfName("Adobe.PPKLite"))
	sig.set("SubFilter", pdfName("ETSI.CAdES.detached"))
	sig.set("ByteRange", rawPDF("[0 "+string(bytes.Repeat([]byte("*"), 3*byteRangeWidth+2))+"]"))
	sig.set("Contents", rawPDF("<"+string(bytes.Repeat([]byte("0"), 2*placeholder))+">"))
	sig.set("M", pdfString(pdfDate(now)))
	id := IdentityOf(k.cert)
	sig.set("Name", textString(id.Name))
	for _, e := range []struct {
		key pdfName
		v   string
	}{{"Reason", opts.Reason}, {"Location", opts.Location}, {"ContactInfo", opts.ContactInfo}} {
		if e.v != "" {
			sig.set(e.key, textString(e.v))
		}
	}
	app := newDict()
	app.set("Name", pdfName("CIE Desktop"))
	build := newDict()
	build.set("App", app)
	sig.set("Prop_Build", build)
	sigStart := inc.buf.Len()
	inc.add(sigRef, sig)
	sigText := inc.buf.Bytes()[sigStart:]
	brPos := sigStart + bytes.Index(sigText, []byte("[0 *"))
	ltPos := sigStart + bytes.Index(sigText, []byte("<0000"))
	gtPos := ltPos + 1 + 2*placeholder

	// The signature field, merged with its widget annotation.
	fieldName, err := d.fieldName(cat)
	if err != nil {
		return err
	}
	widgetRef := inc.alloc()
	widget := newDict()
	widget.set("Type", pdfName("Annot"))
	widget.set("Subtype", pdfName("Widget"))
	widget.set("FT", pdfName("Sig"))
	widget.set("T", pdfString(fieldName))
	widget.set("V", sigRef)
	widget.set("P", page.ref)
	widget.set("F", int64(132)) // Print | Locked
	if a := opts.Visible; a != nil {
		x0, y0 := page.box[0]+a.Rect.X, page.box[1]+a.Rect.Y
		widget.set("Rect", pdfArray{x0, y0, x0 + a.Rect.W, y0 + a.Rect.H})
		lines := a.Text
		if lines == nil {
			lines = []string{"Firmato digitalmente da", id.Name, now.Format("02/01/2006 15:04:05 -07:00")}
		}
		apRef, err := appearanceObjects(inc, a, lines, a.Rect.W, a.Rect.H)
		if err != nil {
			return err
		}
		ap := newDict()
		ap.set("N", apRef)
		widget.set("AP", ap)
	} else {
		widget.set("Rect", pdfArray{int64(0), int64(0), int64(0), int64(0)})
	}
	inc.add(widgetRef, widget)
	if err := d.addAnnot(inc, page, widgetRef); err != nil {
		return err
	}
	if err := d.addField(inc, cat, rootRef, widgetRef); err != nil {
		return err
	}
	inc.finish(f)

	upd := inc.buf.Bytes()
	total := inc.base + int64(len(upd))
	br := [4]int64{0, inc.base + int64(ltPos), inc.base + int64(gtPos) + 1, 0}
	br[3] = total - br[2]
	brText := fmt.Sprintf("[0 %-*d %-*d %-*d]", byteRangeWidth, br[1], byteRangeWidth, br[2], byteRangeWidth, br[3])
	if len(brText) != 3*byteRangeWidth+6 {
		return errors.New("sign: the document is too large to sign (10 GB or more)")
	}
	copy(upd[brPos:], brText)

	// Hash everything but the /Contents string, then sign.
	digest := k.hash.New()
	prog := &progressReader{progress: opts.Progress, total: 2*inc.base + int64(len(upd))}
	if _, err := io.Copy(digest, prog.wrap(ctx, io.NewSectionReader(f.r, 0, inc.base))); err != nil {
		return fmt.Errorf("sign: reading the PDF: %w", err)
	}
	digest.Write(upd[:ltPos])
	digest.Write(upd[gtPos+1:])
	si, err := k.signerInfo(ctx, attrSpec{contentType: oidData, digest: digest.Sum(nil), cert: k.cert, hash: k.hash}, nil)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	parts := sdParts{version: 1, digestAlgs: [][]byte{digestAlgorithmID(k.hash)}, eContentType: oidData,
		certs: certsDER(opts.Chain), signerInfos: [][]byte{si}}
	cms := parts.encodeDetached()
	if len(cms) > placeholder {
		return fmt.Errorf("sign: internal error: signature of %d bytes for %d reserved", len(cms), placeholder)
	}
	hex.Encode(upd[ltPos+1:], cms)

	if _, err := io.Copy(w, prog.wrap(ctx, io.NewSectionReader(f.r, 0, inc.base))); err != nil {
		return fmt.Errorf("sign: writing the signed PDF: %w", err)
	}
	if _, err := w.Write(upd); err != nil {
		return fmt.Errorf("sign: writing the signed PDF: %w", err)
	}
	return nil
}

// cmsSizeEstimate is the room to reserve for the CMS: its exact size with
// an RSA key, an upper bound otherwise, plus a margin.
func cmsSizeEstimate(k signerKey, chain []*x509.Certificate) (int, error) {
	sigLen := 512
	switch pub := k.cert.PublicKey.(type) {
	case *rsa.PublicKey:
		sigLen = pub.Size()
	case *ecdsa.PublicKey:
		sigLen = 2*((pub.Curve.Params().BitSize+7)/8) + 9
	}
	spec := attrSpec{contentType: oidData, digest: make([]byte, k.hash.Size()), cert: k.cert, hash: k.hash}
	attrs, err := signedAttributes(spec)
	if err != nil {
		return 0, err
	}
	si, err := k.encodeSignerInfo(setOf(0x31, attrs), make([]byte, sigLen), nil)
	if err != nil {
		return 0, err
	}
	parts := sdParts{version: 1, digestAlgs: [][]byte{digestAlgorithmID(k.hash)}, eContentType: oidData,
		certs: certsDER(chain), signerInfos: [][]byte{si}}
	return len(parts.encodeDetached()) + 32, nil
}

// fieldName returns "Signature<n>", unused by the document's fields.
func (d *PDF) fieldName(cat *pdfDict) (string, error) {
	used := map[string]bool{}
	if af, err := d.f.dict(cat.get("AcroForm")); err == nil && af != nil {
		fields, _ := d.f.resolve(af.get("Fields"))
		arr, _ := fields.(pdfArray)
		for _, fv := range arr {
			if fd, err := d.f.dict(fv); err == nil && fd != nil {
				if t, isStr := fd.get("T").(pdfString); isStr {
					used[string(t)] = true
				}
			}
		}
	}
	for n := 1; ; n++ {
		name := "Signature" + strconv.Itoa(n)
		if !used[name] {
			return name, nil
		}
	}
}

// addAnnot adds the widget to the page's /Annots, rewriting the page or
// the annotation array object.
func (d *PDF) addAnnot(inc *increment, page pageInfo, widget pdfRef) error {
	switch a := page.dict.get("Annots").(type) {
	case pdfRef:
		o, err := d.f.resolve(a)
		if err != nil {
			return err
		}
		arr, isArr := o.(pdfArray)
		if !isArr && o != nil {
			return fmt.Errorf("%w: bad /Annots", ErrPDF)
		}
		inc.add(pdfRef{a.num, d.gen(a)}, append(append(pdfArray{}, arr...), widget))
		return nil
	case pdfArray:
		p := page.dict.clone()
		p.set("Annots", append(append(pdfArray{}, a...), widget))
		inc.add(page.ref, p)
	default:
		p := page.dict.clone()
		p.set("Annots", pdfArray{widget})
		inc.add(page.ref, p)
	}
	return nil
}

// addField adds the field to the interactive form (creating it if needed)
// with /SigFlags 3 (signatures exist, append only).
func (d *PDF) addField(inc *increment, cat *pdfDict, rootRef pdfRef, field pdfRef) error {
	afv := cat.get("AcroForm")
	af, err := d.f.dict(afv)
	if err != nil {
		return err
	}
	var form *pdfDict
	if af == nil {
		form = newDict()
	} else {
		form = af.clone()
	}
	fields, err := d.f.resolve(form.get("Fields"))
	if err != nil {
		return err
	}
	arr, _ := fields.(pdfArray)
	form.set("Fields", append(append(pdfArray{}, arr...), field))
	flags, _ := form.get("SigFlags").(int64)
	form.set("SigFlags", flags|3)
	if ref, isRef := afv.(pdfRef); isRef && af != nil {
		inc.add(pdfRef{ref.num, d.gen(ref)}, form)
		return nil
	}
	c := cat.clone()
	if af == nil {
		ref := inc.alloc()
		inc.add(ref, form)
		c.set("AcroForm", ref)
	} else {
		c.set("AcroForm", form)
	}
	inc.add(rootRef, c)
	return nil
}

// gen is the generation of an existing object (0 in object streams).
func (d *PDF) gen(r pdfRef) int {
	if e, found := d.f.xref[r.num]; found && e.typ == 1 {
		return e.gen
	}
	return r.gen
}

// pdfDate formats a time as a PDF date (§7.9.4): D:YYYYMMDDHHmmSS+HH'mm'.
func pdfDate(t time.Time) []byte {
	s := t.Format("D:20060102150405")
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	if off == 0 {
		return []byte(s + "Z")
	}
	return fmt.Appendf([]byte(s), "%c%02d'%02d'", sign, off/3600, off%3600/60)
}

// textString encodes a text string: PDFDocEncoding (Latin-1 here) when
// possible, else UTF-16BE with a byte order mark (§7.9.2.2).
func textString(s string) pdfString {
	latin := true
	for _, r := range s {
		if r > 0xFF || r < 0x20 && r != '\n' && r != '\t' {
			latin = false
		}
	}
	if latin {
		return pdfString(winAnsi(s))
	}
	out := []byte{0xFE, 0xFF}
	for _, r := range s {
		if r > 0xFFFF {
			r -= 0x10000
			hi, lo := 0xD800+(r>>10), 0xDC00+(r&0x3FF)
			out = append(out, byte(hi>>8), byte(hi), byte(lo>>8), byte(lo))
			continue
		}
		out = append(out, byte(r>>8), byte(r))
	}
	return pdfString(out)
}
