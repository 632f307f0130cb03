package sign

import (
	"bufio"
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrNotSignedData: the input is not a CMS SignedData (a .p7m or .p7s),
// in DER, BER or Base64.
var ErrNotSignedData = errors.New("sign: not a CMS signed file (.p7m/.p7s)")

// ErrMalformed: the signed file is damaged or is not valid ASN.1.
var ErrMalformed = errors.New("sign: malformed signed file")

// Limits against hostile input: everything but the content is read into
// memory, so certificates, CRLs and SignerInfos are bounded.
const (
	maxElement = 32 << 20 // one certificate set, CRL set or SignerInfo set
	maxDepth   = 48       // nesting of constructed BER elements
)

// berHeader is the identifier and length octets of one BER element.
type berHeader struct {
	raw         []byte // identifier octets as read
	constructed bool
	length      int64 // -1: indefinite
}

// tag is the first identifier octet (class, constructed bit, low tag number).
func (h berHeader) tag() byte { return h.raw[0] }

func (h berHeader) isEOC() bool { return len(h.raw) == 1 && h.raw[0] == 0 && h.length == 0 }

// berReader reads BER elements from a stream, counting the offset.
type berReader struct {
	r   *bufio.Reader
	off int64
}

func newBERReader(r io.Reader) *berReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &berReader{r: br}
}

func (b *berReader) byte() (byte, error) {
	c, err := b.r.ReadByte()
	if err != nil {
		return 0, eofMalformed(err)
	}
	b.off++
	return c, nil
}

// eofMalformed turns a premature end of input into ErrMalformed.
func eofMalformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrMalformed)
	}
	return err
}

// header reads the identifier and length octets of the next element.
func (b *berReader) header() (berHeader, error) {
	c, err := b.byte()
	if err != nil {
		return berHeader{}, err
	}
	h := berHeader{raw: []byte{c}, constructed: c&0x20 != 0}
	if c&0x1F == 0x1F { // high tag number form
		for i := 0; ; i++ {
			c, err := b.byte()
			if err != nil {
				return h, err
			}
			h.raw = append(h.raw, c)
			if c&0x80 == 0 {
				break
			}
			if i > 3 {
				return h, fmt.Errorf("%w: tag too long", ErrMalformed)
			}
		}
	}
	l, err := b.byte()
	if err != nil {
		return h, err
	}
	switch {
	case l < 0x80:
		h.length = int64(l)
	case l == 0x80:
		if !h.constructed {
			return h, fmt.Errorf("%w: indefinite length on a primitive element", ErrMalformed)
		}
		h.length = -1
	default:
		n := int(l & 0x7F)
		if n > 7 {
			return h, fmt.Errorf("%w: length of %d octets", ErrMalformed, n)
		}
		for range n {
			c, err := b.byte()
			if err != nil {
				return h, err
			}
			h.length = h.length<<8 | int64(c)
		}
	}
	return h, nil
}

// frame is an open constructed element: where it ends (definite) or that
// it ends with end-of-contents octets (indefinite).
type frame struct {
	indefinite bool
	end        int64
}

func (b *berReader) open(h berHeader) frame {
	if h.length < 0 {
		return frame{indefinite: true}
	}
	return frame{end: b.off + h.length}
}

// more reports whether f has more elements; at the end of an indefinite
// frame it consumes the end-of-contents octets.
func (b *berReader) more(f frame) (bool, error) {
	if !f.indefinite {
		if b.off > f.end {
			return false, fmt.Errorf("%w: element overruns its container", ErrMalformed)
		}
		return b.off < f.end, nil
	}
	p, err := b.r.Peek(2)
	if err != nil {
		return false, eofMalformed(err)
	}
	if p[0] == 0 && p[1] == 0 {
		b.r.Discard(2)
		b.off += 2
		return false, nil
	}
	return true, nil
}

// close checks that f is at its end.
func (b *berReader) close(f frame) error {
	more, err := b.more(f)
	if err != nil {
		return err
	}
	if more {
		return fmt.Errorf("%w: unexpected data in an element", ErrMalformed)
	}
	return nil
}

// element reads the rest of the element whose header is h and returns it
// DER-normalised: indefinite lengths become definite, lengths minimal.
// budget bounds the bytes read.
func (b *berReader) element(h berHeader, budget *int64, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nesting too deep", ErrMalformed)
	}
	if !h.constructed {
		if h.length > *budget {
			return nil, fmt.Errorf("%w: element of %d bytes is too large", ErrMalformed, h.length)
		}
		*budget -= h.length
		body := make([]byte, h.length)
		if _, err := io.ReadFull(b.r, body); err != nil {
			return nil, eofMalformed(err)
		}
		b.off += h.length
		return derElement(h.raw, body), nil
	}
	f := b.open(h)
	var body []byte
	for {
		more, err := b.more(f)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		ch, err := b.header()
		if err != nil {
			return nil, err
		}
		if ch.isEOC() {
			return nil, fmt.Errorf("%w: misplaced end-of-contents", ErrMalformed)
		}
		child, err := b.element(ch, budget, depth+1)
		if err != nil {
			return nil, err
		}
		body = append(body, child...)
	}
	return derElement(h.raw, body), nil
}

// next reads one whole element.
func (b *berReader) next(budget int64) ([]byte, error) {
	h, err := b.header()
	if err != nil {
		return nil, err
	}
	return b.element(h, &budget, 0)
}

func derElement(ident, body []byte) []byte {
	out := append([]byte{}, ident...)
	out = appendHeader(out[:len(out)-1], out[len(out)-1], int64(len(body)))
	return append(out, body...)
}

// streamOctets copies the octets of an OCTET STRING, primitive or
// constructed (BER chunks), to w.
func (b *berReader) streamOctets(h berHeader, w io.Writer, depth int) (int64, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("%w: nesting too deep", ErrMalformed)
	}
	if h.tag()&^0x20 != 0x04 {
		return 0, fmt.Errorf("%w: content is not an OCTET STRING", ErrMalformed)
	}
	if !h.constructed {
		n, err := io.CopyN(w, b.r, h.length)
		b.off += n
		if err != nil {
			return n, eofMalformed(err)
		}
		return n, nil
	}
	f := b.open(h)
	var total int64
	for {
		more, err := b.more(f)
		if err != nil {
			return total, err
		}
		if !more {
			return total, nil
		}
		ch, err := b.header()
		if err != nil {
			return total, err
		}
		n, err := b.streamOctets(ch, w, depth+1)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// signedData is a parsed SignedData: the fields as DER elements (for
// copying them unchanged into a new file) and the parsed SignerInfos.
type signedData struct {
	sdParts
	attached   bool
	contentLen int64
	signers    []*signerInfo
}

// readSignedData reads a ContentInfo holding a SignedData from r, which
// may be DER or BER. When the content is attached, content is called once
// the digest algorithms and content type are known, and the writer it
// returns receives the content octets as they stream by.
func readSignedData(r io.Reader, content func(*signedData) (io.Writer, error)) (*signedData, error) {
	b := newBERReader(r)
	sd := &signedData{}
	h, err := b.header()
	if err != nil {
		return nil, notSignedData(err)
	}
	if h.tag() != 0x30 {
		return nil, ErrNotSignedData
	}
	fCI := b.open(h)
	oidDER, err := b.next(64)
	if err != nil {
		return nil, notSignedData(err)
	}
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(oidDER, &oid); err != nil || len(rest) > 0 || !oid.Equal(oidSignedData) {
		return nil, ErrNotSignedData
	}
	if h, err = b.header(); err != nil {
		return nil, err
	}
	if h.tag() != 0xA0 {
		return nil, fmt.Errorf("%w: no [0] content", ErrMalformed)
	}
	fExplicit := b.open(h)
	if h, err = b.header(); err != nil {
		return nil, err
	}
	if h.tag() != 0x30 {
		return nil, fmt.Errorf("%w: SignedData is not a SEQUENCE", ErrMalformed)
	}
	fSD := b.open(h)
	elem, err := b.next(16)
	if err != nil {
		return nil, err
	}
	if _, err := asn1.Unmarshal(elem, &sd.version); err != nil {
		return nil, fmt.Errorf("%w: SignedData version: %v", ErrMalformed, err)
	}
	if elem, err = b.next(maxElement); err != nil {
		return nil, err
	}
	if sd.digestAlgs, err = children(elem, cbasn1.SET); err != nil {
		return nil, fmt.Errorf("%w: digestAlgorithms", ErrMalformed)
	}
	// encapContentInfo
	if h, err = b.header(); err != nil {
		return nil, err
	}
	if h.tag() != 0x30 {
		return nil, fmt.Errorf("%w: encapContentInfo", ErrMalformed)
	}
	fEncap := b.open(h)
	if elem, err = b.next(256); err != nil {
		return nil, err
	}
	if rest, err := asn1.Unmarshal(elem, &sd.eContentType); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("%w: eContentType", ErrMalformed)
	}
	more, err := b.more(fEncap)
	if err != nil {
		return nil, err
	}
	if more {
		if h, err = b.header(); err != nil {
			return nil, err
		}
		if h.tag() != 0xA0 {
			return nil, fmt.Errorf("%w: eContent", ErrMalformed)
		}
		fContent := b.open(h)
		if h, err = b.header(); err != nil {
			return nil, err
		}
		sd.attached = true
		w := io.Discard
		if content != nil {
			if w, err = content(sd); err != nil {
				return nil, err
			}
		}
		if sd.contentLen, err = b.streamOctets(h, w, 0); err != nil {
			return nil, err
		}
		if err := b.close(fContent); err != nil {
			return nil, err
		}
	}
	if err := b.close(fEncap); err != nil {
		return nil, err
	}
	for {
		more, err := b.more(fSD)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		if elem, err = b.next(maxElement); err != nil {
			return nil, err
		}
		var list *[][]byte
		switch elem[0] {
		case 0xA0:
			list = &sd.certs
		case 0xA1:
			list = &sd.crls
		case 0x31:
			list = &sd.signerInfos
		default:
			return nil, fmt.Errorf("%w: unexpected element %#x in SignedData", ErrMalformed, elem[0])
		}
		items, err := children(elem, cbasn1.Tag(elem[0]))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		*list = append(*list, items...)
	}
	if err := b.close(fExplicit); err != nil {
		return nil, err
	}
	// Whatever follows the ContentInfo (padding, a newline) is ignored, as
	// other verifiers do.
	if fCI.indefinite {
		if err := b.close(fCI); err != nil {
			return nil, err
		}
	}
	for _, raw := range sd.signerInfos {
		si, err := parseSignerInfo(raw)
		if err != nil {
			return nil, err
		}
		sd.signers = append(sd.signers, si)
	}
	return sd, nil
}

func notSignedData(err error) error {
	if errors.Is(err, ErrMalformed) {
		return ErrNotSignedData
	}
	return err
}

// children splits the DER element der (with the given tag) into its
// child elements.
func children(der []byte, tag cbasn1.Tag) ([][]byte, error) {
	s := cryptobyte.String(der)
	var body cryptobyte.String
	if !s.ReadASN1(&body, tag) || !s.Empty() {
		return nil, fmt.Errorf("%w: bad element", ErrMalformed)
	}
	var out [][]byte
	for !body.Empty() {
		var el cryptobyte.String
		var t cbasn1.Tag
		if !body.ReadAnyASN1Element(&el, &t) {
			return nil, fmt.Errorf("%w: bad element", ErrMalformed)
		}
		out = append(out, el)
	}
	return out, nil
}

// attr is one attribute of a SignerInfo: its type and the DER of each value.
type attr struct {
	oid    asn1.ObjectIdentifier
	values [][]byte
}

// signerInfo is a parsed SignerInfo (RFC 5652 §5.3).
type signerInfo struct {
	raw         []byte
	version     int64
	issuer      []byte   // raw Name (sid IssuerAndSerialNumber)
	serial      *big.Int // (sid IssuerAndSerialNumber)
	ski         []byte   // sid subjectKeyIdentifier (version 3)
	digestAlg   asn1.ObjectIdentifier
	signedAttrs []byte // the [0] element as in the file; nil when absent
	attrs       []attr
	sigAlg      asn1.ObjectIdentifier
	sigParams   []byte // DER of the parameters, nil when absent
	signature   []byte
	unsigned    []attr

	beforeUnsigned []byte   // the SEQUENCE's content up to unsignedAttrs
	unsignedRaw    [][]byte // DER of each unsigned Attribute
}

// find returns the values of the attribute oid in list.
func findAttr(list []attr, oid asn1.ObjectIdentifier) ([][]byte, bool) {
	for _, a := range list {
		if a.oid.Equal(oid) {
			return a.values, true
		}
	}
	return nil, false
}

// parseSignerInfo parses one DER SignerInfo.
func parseSignerInfo(raw []byte) (*signerInfo, error) {
	si := &signerInfo{raw: raw}
	bad := func(what string) error { return fmt.Errorf("%w: SignerInfo %s", ErrMalformed, what) }
	s := cryptobyte.String(raw)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, bad("is not a SEQUENCE")
	}
	if !body.ReadASN1Int64WithTag(&si.version, cbasn1.INTEGER) {
		return nil, bad("version")
	}
	switch {
	case body.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer cryptobyte.String
		if !body.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
			return nil, bad("issuerAndSerialNumber")
		}
		si.serial = new(big.Int)
		if !ias.ReadASN1Integer(si.serial) || !ias.Empty() {
			return nil, bad("serial number")
		}
		si.issuer = issuer
	case body.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		var ski cryptobyte.String
		if !body.ReadASN1(&ski, cbasn1.Tag(0).ContextSpecific()) {
			return nil, bad("subjectKeyIdentifier")
		}
		si.ski = ski
	default:
		return nil, bad("sid")
	}
	var err error
	if si.digestAlg, _, err = readAlgorithm(&body); err != nil {
		return nil, bad("digestAlgorithm")
	}
	if body.PeekASN1Tag(signedAttrsTag) {
		var el cryptobyte.String
		if !body.ReadASN1Element(&el, signedAttrsTag) {
			return nil, bad("signedAttrs")
		}
		si.signedAttrs = el
		if si.attrs, err = parseAttributes(el, signedAttrsTag); err != nil {
			return nil, bad("signedAttrs")
		}
	}
	if si.sigAlg, si.sigParams, err = readAlgorithm(&body); err != nil {
		return nil, bad("signatureAlgorithm")
	}
	var sig cryptobyte.String
	if !body.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, bad("signature")
	}
	si.signature = sig
	si.beforeUnsigned = raw[headerLen(raw) : len(raw)-len(body)]
	if body.PeekASN1Tag(unsignedAttrsTag) {
		var el cryptobyte.String
		if !body.ReadASN1Element(&el, unsignedAttrsTag) {
			return nil, bad("unsignedAttrs")
		}
		if si.unsigned, err = parseAttributes(el, unsignedAttrsTag); err != nil {
			return nil, bad("unsignedAttrs")
		}
		if si.unsignedRaw, err = children(el, unsignedAttrsTag); err != nil {
			return nil, bad("unsignedAttrs")
		}
	}
	if !body.Empty() {
		return nil, bad("has trailing data")
	}
	return si, nil
}

// readAlgorithm reads an AlgorithmIdentifier.
func readAlgorithm(s *cryptobyte.String) (asn1.ObjectIdentifier, []byte, error) {
	var seq cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, ErrMalformed
	}
	var params []byte
	if !seq.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1Element(&el, &tag) || !seq.Empty() {
			return nil, nil, ErrMalformed
		}
		if tag != cbasn1.NULL {
			params = el
		}
	}
	return oid, params, nil
}

// parseAttributes parses a SET OF Attribute carried under tag.
func parseAttributes(el []byte, tag cbasn1.Tag) ([]attr, error) {
	s := cryptobyte.String(el)
	var set cryptobyte.String
	if !s.ReadASN1(&set, tag) {
		return nil, ErrMalformed
	}
	var out []attr
	for !set.Empty() {
		var a, values cryptobyte.String
		var at attr
		if !set.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&at.oid) ||
			!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
			return nil, ErrMalformed
		}
		for !values.Empty() {
			var v cryptobyte.String
			var t cbasn1.Tag
			if !values.ReadAnyASN1Element(&v, &t) {
				return nil, ErrMalformed
			}
			at.values = append(at.values, v)
		}
		out = append(out, at)
	}
	return out, nil
}

// cmsInput returns a reader of the binary CMS in r: DER/BER as is, or
// Base64 (with or without PEM armour, any line breaks) decoded on the fly.
func cmsInput(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrNotSignedData
		}
		return nil, err
	}
	if first[0] == 0x30 {
		return br, nil
	}
	head, _ := br.Peek(64)
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) && !bytes.HasPrefix(trimmed, []byte("MI")) {
		return nil, ErrNotSignedData
	}
	return bufio.NewReaderSize(base64.NewDecoder(base64.StdEncoding, &armorFilter{r: br, lineStart: true}), 64<<10), nil
}

// armorFilter passes the Base64 alphabet of its input and drops white
// space and PEM armour lines ("-----BEGIN …-----").
type armorFilter struct {
	r         *bufio.Reader
	lineStart bool
	skipping  bool
}

func (f *armorFilter) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := f.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		switch {
		case c == '\n':
			f.lineStart, f.skipping = true, false
			continue
		case f.skipping:
			continue
		case f.lineStart && c == '-':
			f.skipping = true
			continue
		case c == '\r' || c == ' ' || c == '\t':
			continue
		}
		f.lineStart = false
		p[n] = c
		n++
	}
	return n, nil
}
