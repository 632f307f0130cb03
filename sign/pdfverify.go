package sign

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoSignature: the PDF has no signature field with a signature.
var ErrNoSignature = errors.New("sign: the PDF is not signed")

// sigField is a signed signature field.
type sigField struct {
	name string
	sig  *pdfDict
	br   [4]int64
	brOK bool
}

// signatureFields walks the interactive form's field tree (§12.7.3) for
// signature fields with a value.
func signatureFields(f *pdfFile) ([]sigField, error) {
	cat, _, err := f.catalog()
	if err != nil {
		return nil, err
	}
	af, err := f.dict(cat.get("AcroForm"))
	if err != nil || af == nil {
		return nil, err
	}
	var out []sigField
	seen := map[pdfRef]bool{}
	var walk func(v any, parentName string, parentFT any, depth int) error
	walk = func(v any, parentName string, parentFT any, depth int) error {
		if ref, isRef := v.(pdfRef); isRef {
			if seen[ref] {
				return nil
			}
			seen[ref] = true
		}
		if depth > maxPDFDepth {
			return fmt.Errorf("%w: form fields nested too deep", ErrPDF)
		}
		d, err := f.dict(v)
		if err != nil || d == nil {
			return err
		}
		name := parentName
		if t, isStr := d.get("T").(pdfString); isStr {
			if name != "" {
				name += "."
			}
			name += pdfText(t)
		}
		ft := d.get("FT")
		if ft == nil {
			ft = parentFT
		}
		if ft == pdfName("Sig") {
			if sig, err := f.dict(d.get("V")); err == nil && sig != nil {
				sf := sigField{name: name, sig: sig}
				if arr, isArr := sig.get("ByteRange").(pdfArray); isArr && len(arr) == 4 {
					sf.brOK = true
					for i, x := range arr {
						n, isInt := x.(int64)
						sf.br[i] = n
						sf.brOK = sf.brOK && isInt
					}
				}
				out = append(out, sf)
			}
		}
		kids, err := f.resolve(d.get("Kids"))
		if err != nil {
			return err
		}
		arr, _ := kids.(pdfArray)
		for _, k := range arr {
			if err := walk(k, name, ft, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	fields, err := f.resolve(af.get("Fields"))
	if err != nil {
		return nil, err
	}
	arr, _ := fields.(pdfArray)
	for _, v := range arr {
		if err := walk(v, "", nil, 0); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b sigField) int {
		return int(min(max(a.br[2]+a.br[3]-b.br[2]-b.br[3], -1), 1))
	})
	return out, nil
}

// VerifyPDF verifies every signature of the PDF in r (size bytes), in the
// order they were made: the bytes each covers (its /ByteRange must frame
// exactly its /Contents), the CMS as for CAdES, and whether the document
// was changed after it. A signature followed by later incremental updates
// (such as another signature) stays valid for the revision it signed; the
// report says it does not cover the whole document.
func VerifyPDF(ctx context.Context, r io.ReaderAt, size int64, opts VerifyOptions) (*Report, error) {
	f, err := openPDFFile(r, size)
	if err != nil {
		return nil, err
	}
	fields, err := signatureFields(f)
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, ErrNoSignature
	}
	var ends []int64
	for _, sf := range fields {
		if sf.brOK {
			ends = append(ends, sf.br[2]+sf.br[3])
		}
	}
	ends = append(ends, size)
	slices.Sort(ends)
	ends = slices.Compact(ends)
	rep := &Report{Format: FormatPAdES, ContentSize: size}
	for i, sf := range fields {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := verifyPDFSignature(ctx, f, sf, strconv.Itoa(i+1), &opts)
		s.PDF.Revisions = len(ends)
		if sf.brOK {
			s.PDF.Revision = slices.Index(ends, sf.br[2]+sf.br[3]) + 1
		}
		if sf.brOK && !s.PDF.CoversWholeDocument && s.Integrity.State == StateOK {
			s.Warnings = append(s.Warnings, fmt.Sprintf("the document was changed after this signature: it signs revision %d of %d", s.PDF.Revision, s.PDF.Revisions))
		}
		rep.Signatures = append(rep.Signatures, s)
	}
	return rep, nil
}

func verifyPDFSignature(ctx context.Context, f *pdfFile, sf sigField, id string, opts *VerifyOptions) *Signature {
	sub, _ := sf.sig.get("SubFilter").(pdfName)
	info := &PDFSignature{Field: sf.name, SubFilter: string(sub), ByteRange: sf.br}
	fail := func(why string) *Signature {
		s := &Signature{ID: id, PDF: info, Integrity: failed(why), SigningCertificate: notChecked(""),
			Chain: notChecked("not reached"), Revocation: notChecked("not reached")}
		s.decide()
		return s
	}
	if sub == "ETSI.RFC3161" {
		s := fail("")
		s.Integrity = notChecked("document time-stamp")
		s.Verdict, s.Reason = VerdictIndeterminate, "indeterminate: document time-stamps (ETSI.RFC3161) are not verified by this version"
		return s
	}
	br := sf.br
	if !sf.brOK || br[0] != 0 || br[1] <= 0 || br[2] < br[1] || br[3] < 0 || br[2]+br[3] > f.size {
		return fail("bad /ByteRange")
	}
	info.CoversWholeDocument = br[2]+br[3] == f.size
	contents, isStr := sf.sig.get("Contents").(pdfString)
	if !isStr || len(contents) == 0 {
		return fail("no /Contents")
	}
	// The excluded range must be exactly the hex string of /Contents:
	// nothing else of the document may escape the signature.
	gap := make([]byte, br[2]-br[1])
	if _, err := f.r.ReadAt(gap, br[1]); err != nil && !errors.Is(err, io.EOF) {
		return fail("cannot read the signature: " + err.Error())
	}
	if !gapIsContents(gap, contents) {
		return fail("the /ByteRange leaves out more than the signature's /Contents")
	}
	var mh multiHash
	var content bytes.Buffer
	sd, err := readSignedData(bytes.NewReader(contents), func(sd *signedData) (io.Writer, error) {
		return &limitedBuffer{b: &content, max: 1 << 10}, nil
	})
	if err != nil {
		return fail("the signature is not a CMS SignedData: " + err.Error())
	}
	if len(sd.signers) == 0 {
		return fail("the CMS has no signer")
	}
	mh = newMultiHash(append(signerHashes(sd), crypto.SHA1)...)
	ranges := io.MultiReader(io.NewSectionReader(f.r, br[0], br[1]), io.NewSectionReader(f.r, br[2], br[3]))
	if _, err := copyContent(ctx, mh, ranges, br[1]+br[3], nil); err != nil {
		return fail("cannot read the signed bytes: " + err.Error())
	}
	sums := mh.sums()
	switch sub {
	case "ETSI.CAdES.detached", "adbe.pkcs7.detached":
		if sd.attached {
			return fail("a detached signature (" + string(sub) + ") must not embed content")
		}
	case "adbe.pkcs7.sha1":
		// The content is the SHA-1 of the byte ranges, signed as data.
		if !sd.attached || !bytes.Equal(content.Bytes(), sums[crypto.SHA1]) {
			return fail("the signed SHA-1 of the document differs")
		}
		sums = newMultiHash(signerHashes(sd)...).sumOf(content.Bytes())
	default:
		return fail("unsupported /SubFilter " + string(sub))
	}
	v := newVerifier(opts, sd)
	s := v.signer(ctx, sd.signers[0], id, sums, sd.eContentType)
	s.PDF = info
	if len(sd.signers) > 1 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the CMS has %d signers; only the first is verified", len(sd.signers)))
	}
	if strings.HasPrefix(string(sub), "adbe.") && s.SigningCertificate.State == StateFailed &&
		strings.HasPrefix(s.SigningCertificate.Detail, "missing") {
		s.SigningCertificate = notChecked("absent (an " + string(sub) + " signature, not PAdES)")
		s.Warnings = append(s.Warnings, "not a PAdES signature ("+string(sub)+"): the signer's certificate is not protected by the signature")
	}
	if s.SigningTime != nil && sub == "ETSI.CAdES.detached" {
		s.Warnings = append(s.Warnings, "the CMS carries a signing-time attribute: not PAdES baseline (EN 319 142-1 puts the time in /M)")
	}
	if s.SigningTime == nil {
		if m, isStr := sf.sig.get("M").(pdfString); isStr {
			if t, err := parsePDFDate(string(m)); err == nil {
				s.SigningTime = &t
				s.SigningTimeSource = "the PDF's /M entry (the signer's clock; no time-stamp proves it)"
			}
		}
	}
	s.decide()
	return s
}

// sumOf hashes b with every algorithm of m.
func (m multiHash) sumOf(b []byte) map[crypto.Hash][]byte {
	m.Write(b)
	return m.sums()
}

// limitedBuffer keeps at most max bytes and fails beyond.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.max {
		return 0, errors.New("embedded content too large for a PDF signature")
	}
	return l.b.Write(p)
}

// gapIsContents reports whether gap is "<hex>" encoding exactly contents.
func gapIsContents(gap []byte, contents pdfString) bool {
	if len(gap) < 2 || gap[0] != '<' || gap[len(gap)-1] != '>' {
		return false
	}
	l := &lexer{b: append(slices.Clone(gap), ' ')}
	tok, err := l.token()
	s, isStr := tok.(pdfString)
	return err == nil && isStr && l.pos == len(gap) && bytes.Equal(s, contents)
}

// pdfText decodes a text string (PDFDocEncoding ≈ Latin-1, or UTF-16BE).
func pdfText(s pdfString) string {
	if len(s) >= 2 && s[0] == 0xFE && s[1] == 0xFF {
		var rs []rune
		for i := 2; i+1 < len(s); i += 2 {
			r := rune(s[i])<<8 | rune(s[i+1])
			if r >= 0xD800 && r < 0xDC00 && i+3 < len(s) {
				lo := rune(s[i+2])<<8 | rune(s[i+3])
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 2
			}
			rs = append(rs, r)
		}
		return string(rs)
	}
	rs := make([]rune, len(s))
	for i, c := range s {
		rs[i] = rune(c)
	}
	return string(rs)
}

// parsePDFDate reads D:YYYYMMDDHHmmSSOHH'mm' (all but the year optional).
func parsePDFDate(s string) (time.Time, error) {
	s = strings.TrimPrefix(s, "D:")
	digits := func(i, n, def int) int {
		if len(s) < i+n {
			return def
		}
		v, err := strconv.Atoi(s[i : i+n])
		if err != nil {
			return def
		}
		return v
	}
	if len(s) < 4 {
		return time.Time{}, fmt.Errorf("%w: bad date", ErrPDF)
	}
	loc := time.UTC
	if len(s) > 14 {
		switch s[14] {
		case '+', '-':
			off := digits(15, 2, 0)*3600 + digits(18, 2, 0)*60
			if s[14] == '-' {
				off = -off
			}
			loc = time.FixedZone("", off)
		}
	}
	return time.Date(digits(0, 4, 0), time.Month(digits(4, 2, 1)), digits(6, 2, 1),
		digits(8, 2, 0), digits(10, 2, 0), digits(12, 2, 0), 0, loc), nil
}
