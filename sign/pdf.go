package sign

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// This file reads PDF files (ISO 32000-1 §7) far enough to sign and verify
// them: the object syntax, cross-reference tables and streams (with /Prev
// chains and hybrid files), object streams, and FlateDecode with PNG
// predictors. Encrypted documents are refused.

// ErrPDF: the file is not a PDF this package can read.
var ErrPDF = errors.New("sign: unreadable PDF")

// ErrEncryptedPDF: the PDF is encrypted (password-protected).
var ErrEncryptedPDF = errors.New("sign: encrypted PDFs are not supported")

// PDF object values: nil (null), bool, int64, float64, pdfName,
// pdfString, pdfArray, *pdfDict, pdfRef and *pdfStream.
type (
	pdfName   string
	pdfString []byte
	pdfArray  []any
	pdfRef    struct{ num, gen int }
	// pdfDict keeps its keys in file order, so that a rewritten object
	// reads like the original.
	pdfDict struct {
		keys []pdfName
		vals map[pdfName]any
	}
	pdfStream struct {
		dict *pdfDict
		data []byte // as stored (encoded)
	}
	pdfKeyword string // obj, endobj, stream, R, … and delimiters
)

func newDict() *pdfDict { return &pdfDict{vals: map[pdfName]any{}} }

func (d *pdfDict) get(k pdfName) any {
	if d == nil {
		return nil
	}
	return d.vals[k]
}

func (d *pdfDict) set(k pdfName, v any) {
	if _, exists := d.vals[k]; !exists {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
}

// clone copies d (one level deep).
func (d *pdfDict) clone() *pdfDict {
	c := newDict()
	for _, k := range d.keys {
		c.set(k, d.vals[k])
	}
	return c
}

// Limits against hostile PDFs.
const (
	maxPDFObject   = 64 << 20  // bytes of one object's text
	maxPDFStream   = 256 << 20 // decoded bytes of one xref or object stream
	maxPDFDepth    = 64        // nesting of arrays and dictionaries
	maxXrefEntries = 8 << 20
)

// lexer tokenises PDF syntax in b.
type lexer struct {
	b   []byte
	pos int
}

// errShort: the object continues past the bytes read; read more and retry.
var errShort = errors.New("short")

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == 0
}

func isDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		if c == '%' {
			for l.pos < len(l.b) && l.b[l.pos] != '\n' && l.b[l.pos] != '\r' {
				l.pos++
			}
			continue
		}
		if !isSpace(c) {
			return
		}
		l.pos++
	}
}

// token returns the next token: int64, float64, pdfName, pdfString or a
// pdfKeyword (also for the delimiters [ ] << >>).
func (l *lexer) token() (any, error) {
	l.skipSpace()
	if l.pos >= len(l.b) {
		return nil, errShort
	}
	c := l.b[l.pos]
	switch {
	case c == '[' || c == ']' || c == '{' || c == '}':
		l.pos++
		return pdfKeyword(c), nil
	case c == '<':
		if l.pos+1 < len(l.b) && l.b[l.pos+1] == '<' {
			l.pos += 2
			return pdfKeyword("<<"), nil
		}
		return l.hexString()
	case c == '>':
		if l.pos+1 < len(l.b) && l.b[l.pos+1] == '>' {
			l.pos += 2
			return pdfKeyword(">>"), nil
		}
		if l.pos+1 >= len(l.b) {
			return nil, errShort
		}
		return nil, fmt.Errorf("%w: stray '>' at %d", ErrPDF, l.pos)
	case c == '(':
		return l.literalString()
	case c == '/':
		return l.name()
	case c == '+' || c == '-' || c == '.' || '0' <= c && c <= '9':
		return l.number()
	case c == ')':
		return nil, fmt.Errorf("%w: stray ')' at %d", ErrPDF, l.pos)
	}
	start := l.pos
	for l.pos < len(l.b) && !isSpace(l.b[l.pos]) && !isDelim(l.b[l.pos]) {
		l.pos++
	}
	if l.pos == len(l.b) {
		return nil, errShort
	}
	return pdfKeyword(l.b[start:l.pos]), nil
}

func (l *lexer) number() (any, error) {
	start := l.pos
	real := false
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		if c == '.' {
			real = true
		} else if !('0' <= c && c <= '9' || (c == '+' || c == '-') && l.pos == start) {
			break
		}
		l.pos++
	}
	if l.pos == len(l.b) {
		return nil, errShort
	}
	s := string(l.b[start:l.pos])
	if !real {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if s == "-" || s == "+" || s == "." || s == "-." {
			return float64(0), nil // tolerated by readers
		}
		return nil, fmt.Errorf("%w: bad number %q", ErrPDF, s)
	}
	return f, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (l *lexer) name() (any, error) {
	l.pos++ // '/'
	var out []byte
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		if isSpace(c) || isDelim(c) {
			return pdfName(out), nil
		}
		if c == '#' && l.pos+2 < len(l.b) {
			h, ok1 := unhex(l.b[l.pos+1])
			lo, ok2 := unhex(l.b[l.pos+2])
			if ok1 && ok2 {
				out = append(out, h<<4|lo)
				l.pos += 3
				continue
			}
		}
		out = append(out, c)
		l.pos++
	}
	return nil, errShort
}

func (l *lexer) hexString() (any, error) {
	l.pos++ // '<'
	var out []byte
	var hi byte
	half := false
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		l.pos++
		if c == '>' {
			if half {
				out = append(out, hi<<4)
			}
			return pdfString(out), nil
		}
		if isSpace(c) {
			continue
		}
		v, ok := unhex(c)
		if !ok {
			return nil, fmt.Errorf("%w: bad hex string", ErrPDF)
		}
		if half {
			out = append(out, hi<<4|v)
		} else {
			hi = v
		}
		half = !half
	}
	return nil, errShort
}

func (l *lexer) literalString() (any, error) {
	l.pos++ // '('
	var out []byte
	depth := 1
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		l.pos++
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return pdfString(out), nil
			}
		case '\\':
			if l.pos >= len(l.b) {
				return nil, errShort
			}
			e := l.b[l.pos]
			l.pos++
			switch e {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case '\r':
				if l.pos < len(l.b) && l.b[l.pos] == '\n' {
					l.pos++
				}
				continue
			case '\n':
				continue
			default:
				if '0' <= e && e <= '7' {
					v := int(e - '0')
					for i := 0; i < 2 && l.pos < len(l.b) && '0' <= l.b[l.pos] && l.b[l.pos] <= '7'; i++ {
						v = v*8 + int(l.b[l.pos]-'0')
						l.pos++
					}
					c = byte(v)
				} else {
					c = e
				}
			}
		}
		out = append(out, c)
	}
	return nil, errShort
}

// object parses one object (a reference "n g R" included).
func (l *lexer) object(depth int) (any, error) {
	if depth > maxPDFDepth {
		return nil, fmt.Errorf("%w: nesting too deep", ErrPDF)
	}
	tok, err := l.token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case int64:
		save := l.pos
		if g, err := l.token(); err == nil {
			if gen, isInt := g.(int64); isInt {
				if r, err := l.token(); err == nil && r == pdfKeyword("R") {
					if t < 0 || gen < 0 || t > 1<<31 || gen > 65535 {
						return nil, fmt.Errorf("%w: bad reference", ErrPDF)
					}
					return pdfRef{int(t), int(gen)}, nil
				} else if errors.Is(err, errShort) {
					return nil, errShort
				}
			}
		} else if errors.Is(err, errShort) {
			return nil, errShort
		}
		l.pos = save
		return t, nil
	case pdfKeyword:
		switch t {
		case "[":
			arr := pdfArray{}
			for {
				l.skipSpace()
				if l.pos >= len(l.b) {
					return nil, errShort
				}
				if l.b[l.pos] == ']' {
					l.pos++
					return arr, nil
				}
				v, err := l.object(depth + 1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
		case "<<":
			d := newDict()
			for {
				k, err := l.token()
				if err != nil {
					return nil, err
				}
				if k == pdfKeyword(">>") {
					return d, nil
				}
				name, isName := k.(pdfName)
				if !isName {
					return nil, fmt.Errorf("%w: dictionary key is not a name", ErrPDF)
				}
				l.skipSpace()
				if l.pos < len(l.b) && l.b[l.pos] == '>' && l.pos+1 < len(l.b) && l.b[l.pos+1] == '>' {
					d.set(name, nil) // a key without value, tolerated
					continue
				}
				v, err := l.object(depth + 1)
				if err != nil {
					return nil, err
				}
				d.set(name, v)
			}
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			return nil, nil
		}
		return nil, fmt.Errorf("%w: unexpected %q", ErrPDF, string(t))
	}
	return tok, nil
}

// xrefEntry locates an object: in the file (typ 1) or in an object stream
// (typ 2); typ 0 is a free entry.
type xrefEntry struct {
	typ byte
	off int64 // typ 1: offset; typ 2: object stream number
	gen int   // typ 1: generation; typ 2: index in the stream
}

// pdfFile is an open PDF.
type pdfFile struct {
	r         io.ReaderAt
	size      int64
	xref      map[int]xrefEntry
	trailer   *pdfDict
	lastXref  int64 // offset of the newest cross-reference section
	xrefIsStm bool  // the newest section is a cross-reference stream
	objStms   map[int]*objStm
	loading   map[int]bool
}

// objStm is a decoded object stream.
type objStm struct {
	data  []byte
	first int
	offs  map[int]int
}

func (f *pdfFile) readAt(off int64, n int) ([]byte, error) {
	if off < 0 || off >= f.size {
		return nil, fmt.Errorf("%w: offset %d outside the file", ErrPDF, off)
	}
	n = int(min(int64(n), f.size-off))
	b := make([]byte, n)
	if _, err := f.r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the PDF: %w", err)
	}
	return b, nil
}

// parseAt parses with fn from offset off, reading more of the file while
// the object is incomplete.
func (f *pdfFile) parseAt(off int64, fn func(l *lexer) (any, error)) (any, *lexer, error) {
	for n := 64 << 10; ; n *= 4 {
		b, err := f.readAt(off, n)
		if err != nil {
			return nil, nil, err
		}
		l := &lexer{b: b}
		v, err := fn(l)
		if errors.Is(err, errShort) {
			if int64(len(b)) >= f.size-off || n >= maxPDFObject {
				return nil, nil, fmt.Errorf("%w: object at %d is truncated", ErrPDF, off)
			}
			continue
		}
		return v, l, err
	}
}

// openPDFFile reads the cross-reference information of a PDF.
func openPDFFile(r io.ReaderAt, size int64) (*pdfFile, error) {
	f := &pdfFile{r: r, size: size, xref: map[int]xrefEntry{}, objStms: map[int]*objStm{}, loading: map[int]bool{}}
	head, err := f.readAt(0, 1024)
	if err != nil {
		return nil, fmt.Errorf("%w: empty file", ErrPDF)
	}
	if !bytes.Contains(head, []byte("%PDF-")) {
		return nil, fmt.Errorf("%w: no %%PDF header", ErrPDF)
	}
	tailLen := int64(4096)
	tailOff := max(0, size-tailLen)
	tail, err := f.readAt(tailOff, int(tailLen))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndex(tail, []byte("startxref"))
	if i < 0 {
		return nil, fmt.Errorf("%w: no startxref", ErrPDF)
	}
	l := &lexer{b: append(tail[i+len("startxref"):], ' ')}
	tok, err := l.token()
	off, isInt := tok.(int64)
	if err != nil || !isInt {
		return nil, fmt.Errorf("%w: bad startxref", ErrPDF)
	}
	f.lastXref = off
	seen := map[int64]bool{}
	for first := true; ; first = false {
		if seen[off] || len(seen) > 4096 {
			return nil, fmt.Errorf("%w: cross-reference loop", ErrPDF)
		}
		seen[off] = true
		trailer, isStm, err := f.readXrefSection(off)
		if err != nil {
			return nil, err
		}
		if first {
			f.trailer, f.xrefIsStm = trailer, isStm
		}
		if stm, isInt := trailer.get("XRefStm").(int64); isInt && !seen[stm] {
			seen[stm] = true
			if _, _, err := f.readXrefSection(stm); err != nil {
				return nil, err
			}
		}
		prev, hasPrev := trailer.get("Prev").(int64)
		if !hasPrev {
			break
		}
		off = prev
	}
	if f.trailer.get("Encrypt") != nil {
		return nil, ErrEncryptedPDF
	}
	return f, nil
}

// addEntry records an entry unless a newer section already did.
func (f *pdfFile) addEntry(num int, e xrefEntry) error {
	if num < 0 {
		return fmt.Errorf("%w: negative object number", ErrPDF)
	}
	if _, exists := f.xref[num]; !exists {
		if len(f.xref) >= maxXrefEntries {
			return fmt.Errorf("%w: too many objects", ErrPDF)
		}
		f.xref[num] = e
	}
	return nil
}

// readXrefSection reads the table or stream at off and returns its trailer.
func (f *pdfFile) readXrefSection(off int64) (*pdfDict, bool, error) {
	b, err := f.readAt(off, 4)
	if err != nil {
		return nil, false, err
	}
	if string(b) == "xref" {
		t, err := f.readXrefTable(off + 4)
		return t, false, err
	}
	obj, err := f.objectAt(off, -1)
	if err != nil {
		return nil, false, fmt.Errorf("%w: no cross-reference at %d", ErrPDF, off)
	}
	stm, isStm := obj.(*pdfStream)
	if !isStm || stm.dict.get("Type") != pdfName("XRef") {
		return nil, false, fmt.Errorf("%w: no cross-reference at %d", ErrPDF, off)
	}
	return stm.dict, true, f.readXrefStream(stm)
}

func (f *pdfFile) readXrefTable(off int64) (*pdfDict, error) {
	type entry struct {
		num int
		e   xrefEntry
	}
	v, _, err := f.parseAt(off, func(l *lexer) (any, error) {
		var entries []entry
		for {
			tok, err := l.token()
			if err != nil {
				return nil, err
			}
			if tok == pdfKeyword("trailer") {
				d, err := l.object(0)
				if err != nil {
					return nil, err
				}
				dict, isDict := d.(*pdfDict)
				if !isDict {
					return nil, fmt.Errorf("%w: bad trailer", ErrPDF)
				}
				for _, e := range entries {
					if err := f.addEntry(e.num, e.e); err != nil {
						return nil, err
					}
				}
				return dict, nil
			}
			start, ok1 := tok.(int64)
			tok, err = l.token()
			if err != nil {
				return nil, err
			}
			count, ok2 := tok.(int64)
			if !ok1 || !ok2 || start < 0 || count < 0 || count > maxXrefEntries {
				return nil, fmt.Errorf("%w: bad cross-reference table", ErrPDF)
			}
			for i := int64(0); i < count; i++ {
				var vals [3]any
				for j := range vals {
					if vals[j], err = l.token(); err != nil {
						return nil, err
					}
				}
				o, ok1 := vals[0].(int64)
				g, ok2 := vals[1].(int64)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("%w: bad cross-reference entry", ErrPDF)
				}
				e := xrefEntry{off: o, gen: int(g)}
				switch vals[2] {
				case pdfKeyword("n"):
					e.typ = 1
				case pdfKeyword("f"):
				default:
					return nil, fmt.Errorf("%w: bad cross-reference entry", ErrPDF)
				}
				entries = append(entries, entry{int(start + i), e})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return v.(*pdfDict), nil
}

func (f *pdfFile) readXrefStream(stm *pdfStream) error {
	data, err := decodeStream(stm)
	if err != nil {
		return err
	}
	w, isArr := stm.dict.get("W").(pdfArray)
	if !isArr || len(w) != 3 {
		return fmt.Errorf("%w: bad /W in cross-reference stream", ErrPDF)
	}
	var widths [3]int
	row := 0
	for i, v := range w {
		n, isInt := v.(int64)
		if !isInt || n < 0 || n > 8 {
			return fmt.Errorf("%w: bad /W in cross-reference stream", ErrPDF)
		}
		widths[i] = int(n)
		row += int(n)
	}
	if row == 0 {
		return fmt.Errorf("%w: bad /W in cross-reference stream", ErrPDF)
	}
	index := pdfArray{int64(0), stm.dict.get("Size")}
	if idx, isArr := stm.dict.get("Index").(pdfArray); isArr {
		index = idx
	}
	pos := 0
	for i := 0; i+1 < len(index); i += 2 {
		start, ok1 := index[i].(int64)
		count, ok2 := index[i+1].(int64)
		if !ok1 || !ok2 || start < 0 || count < 0 || count > maxXrefEntries {
			return fmt.Errorf("%w: bad /Index in cross-reference stream", ErrPDF)
		}
		for j := int64(0); j < count; j++ {
			if pos+row > len(data) {
				return fmt.Errorf("%w: cross-reference stream too short", ErrPDF)
			}
			field := func(k int) int64 {
				var v int64
				for _, c := range data[pos : pos+widths[k]] {
					v = v<<8 | int64(c)
				}
				pos += widths[k]
				return v
			}
			typ := int64(1)
			if widths[0] > 0 {
				typ = field(0)
			}
			a, b := field(1), field(2)
			e := xrefEntry{off: a, gen: int(b)}
			switch typ {
			case 0:
			case 1:
				e.typ = 1
			case 2:
				e.typ = 2
			default:
				continue // reserved types are ignored (§7.5.8.3)
			}
			if err := f.addEntry(int(start+j), e); err != nil {
				return err
			}
		}
	}
	return nil
}

// objectAt parses the indirect object at off; num < 0 accepts any number.
func (f *pdfFile) objectAt(off int64, num int) (any, error) {
	v, l, err := f.parseAt(off, func(l *lexer) (any, error) {
		n, err := l.token()
		if err != nil {
			return nil, err
		}
		if _, err := l.token(); err != nil {
			return nil, err
		}
		kw, err := l.token()
		if err != nil {
			return nil, err
		}
		if nn, isInt := n.(int64); !isInt || kw != pdfKeyword("obj") || num >= 0 && int(nn) != num {
			return nil, fmt.Errorf("%w: object %d is not at offset %d", ErrPDF, num, off)
		}
		obj, err := l.object(0)
		if err != nil {
			return nil, err
		}
		// "endobj" or "stream" and its end of line must be in view.
		l.skipSpace()
		if len(l.b)-l.pos < len("stream")+2 && int64(len(l.b)) < f.size-off {
			return nil, errShort
		}
		return obj, nil
	})
	if err != nil {
		return nil, err
	}
	dict, isDict := v.(*pdfDict)
	if !isDict || !bytes.HasPrefix(l.b[l.pos:], []byte("stream")) {
		return v, nil
	}
	start := l.pos + len("stream")
	if start < len(l.b) && l.b[start] == '\r' {
		start++
	}
	if start < len(l.b) && l.b[start] == '\n' {
		start++
	}
	dataOff := off + int64(start)
	length, err := f.streamLength(dict, dataOff)
	if err != nil {
		return nil, err
	}
	data := make([]byte, length)
	if _, err := f.r.ReadAt(data, dataOff); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the PDF: %w", err)
	}
	return &pdfStream{dict: dict, data: data}, nil
}

// streamLength is /Length, checked against the "endstream" that must
// follow; when it is wrong, the data ends where "endstream" is found.
func (f *pdfFile) streamLength(dict *pdfDict, dataOff int64) (int64, error) {
	n := int64(-1)
	switch v := dict.get("Length").(type) {
	case int64:
		n = v
	case pdfRef:
		if l, err := f.resolve(v); err == nil {
			if li, isInt := l.(int64); isInt {
				n = li
			}
		}
	}
	if n >= 0 && n <= f.size-dataOff {
		after, err := f.readAt(dataOff+n, 32)
		if err == nil && bytes.HasPrefix(bytes.TrimLeft(after, " \t\r\n\f\x00"), []byte("endstream")) {
			if n > maxPDFStream*4 {
				return 0, fmt.Errorf("%w: stream too large", ErrPDF)
			}
			return n, nil
		}
	}
	// Search for endstream.
	const chunk = 1 << 20
	for off := dataOff; off < f.size && off-dataOff < maxPDFStream; off += chunk - 16 {
		b, err := f.readAt(off, chunk)
		if err != nil {
			return 0, err
		}
		if i := bytes.Index(b, []byte("endstream")); i >= 0 {
			end := off + int64(i)
			for end > dataOff {
				c, _ := f.readAt(end-1, 1)
				if len(c) == 0 || (c[0] != '\n' && c[0] != '\r') {
					break
				}
				end--
			}
			return end - dataOff, nil
		}
	}
	return 0, fmt.Errorf("%w: stream without endstream", ErrPDF)
}

// resolve returns the object a reference points to (other values as is).
func (f *pdfFile) resolve(v any) (any, error) {
	ref, isRef := v.(pdfRef)
	if !isRef {
		return v, nil
	}
	e, found := f.xref[ref.num]
	if !found || e.typ == 0 {
		return nil, nil // a missing object is null (§7.3.10)
	}
	if f.loading[ref.num] {
		return nil, fmt.Errorf("%w: object %d refers to itself", ErrPDF, ref.num)
	}
	f.loading[ref.num] = true
	defer delete(f.loading, ref.num)
	if e.typ == 1 {
		return f.objectAt(e.off, ref.num)
	}
	stm, err := f.objStm(int(e.off))
	if err != nil {
		return nil, err
	}
	o, found := stm.offs[ref.num]
	if !found || stm.first+o >= len(stm.data) || o < 0 {
		return nil, fmt.Errorf("%w: object %d missing from its object stream", ErrPDF, ref.num)
	}
	l := &lexer{b: append(stm.data[stm.first+o:len(stm.data):len(stm.data)], ' ')}
	obj, err := l.object(0)
	if errors.Is(err, errShort) {
		return nil, fmt.Errorf("%w: object %d truncated in its object stream", ErrPDF, ref.num)
	}
	return obj, err
}

// dict resolves v and returns it as a dictionary (nil if it is not one).
func (f *pdfFile) dict(v any) (*pdfDict, error) {
	o, err := f.resolve(v)
	if err != nil {
		return nil, err
	}
	switch d := o.(type) {
	case *pdfDict:
		return d, nil
	case *pdfStream:
		return d.dict, nil
	}
	return nil, nil
}

func (f *pdfFile) objStm(num int) (*objStm, error) {
	if s, found := f.objStms[num]; found {
		return s, nil
	}
	e, found := f.xref[num]
	if !found || e.typ != 1 {
		return nil, fmt.Errorf("%w: object stream %d not found", ErrPDF, num)
	}
	o, err := f.objectAt(e.off, num)
	if err != nil {
		return nil, err
	}
	stm, isStm := o.(*pdfStream)
	if !isStm {
		return nil, fmt.Errorf("%w: object %d is not an object stream", ErrPDF, num)
	}
	data, err := decodeStream(stm)
	if err != nil {
		return nil, err
	}
	n, _ := stm.dict.get("N").(int64)
	first, _ := stm.dict.get("First").(int64)
	if n < 0 || first < 0 || first > int64(len(data)) || n > int64(len(data)) {
		return nil, fmt.Errorf("%w: bad object stream %d", ErrPDF, num)
	}
	s := &objStm{data: data, first: int(first), offs: map[int]int{}}
	l := &lexer{b: append(data[:first:first], ' ')}
	for range n {
		a, err1 := l.token()
		b, err2 := l.token()
		an, ok1 := a.(int64)
		bn, ok2 := b.(int64)
		if err1 != nil || err2 != nil || !ok1 || !ok2 || bn < 0 || bn > int64(len(data)) {
			return nil, fmt.Errorf("%w: bad object stream %d", ErrPDF, num)
		}
		s.offs[int(an)] = int(bn)
	}
	f.objStms[num] = s
	return s, nil
}

// decodeStream applies the stream's filters: none or FlateDecode, with
// the PNG predictors of §7.4.4.4.
func decodeStream(s *pdfStream) ([]byte, error) {
	filter := s.dict.get("Filter")
	params, _ := s.dict.get("DecodeParms").(*pdfDict)
	if arr, isArr := filter.(pdfArray); isArr {
		if len(arr) > 1 {
			return nil, fmt.Errorf("%w: chained stream filters are not supported here", ErrPDF)
		}
		if len(arr) == 1 {
			filter = arr[0]
		} else {
			filter = nil
		}
		if pa, isArr := s.dict.get("DecodeParms").(pdfArray); isArr && len(pa) == 1 {
			params, _ = pa[0].(*pdfDict)
		}
	}
	switch filter {
	case nil:
		return s.data, nil
	case pdfName("FlateDecode"):
	default:
		return nil, fmt.Errorf("%w: unsupported stream filter %v", ErrPDF, filter)
	}
	zr, err := zlib.NewReader(bytes.NewReader(s.data))
	if err != nil {
		return nil, fmt.Errorf("%w: bad compressed stream: %v", ErrPDF, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxPDFStream+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: bad compressed stream: %v", ErrPDF, err)
	}
	if len(data) > maxPDFStream {
		return nil, fmt.Errorf("%w: stream too large", ErrPDF)
	}
	pred, _ := params.get("Predictor").(int64)
	if pred < 10 {
		if pred > 1 {
			return nil, fmt.Errorf("%w: TIFF predictor not supported", ErrPDF)
		}
		return data, nil
	}
	cols := int64(1)
	if c, isInt := params.get("Columns").(int64); isInt {
		cols = c
	}
	if cols <= 0 || cols > 1<<16 {
		return nil, fmt.Errorf("%w: bad predictor columns", ErrPDF)
	}
	return unpredictPNG(data, int(cols))
}

// unpredictPNG reverses PNG row filters (one byte per pixel, as in
// cross-reference streams).
func unpredictPNG(data []byte, cols int) ([]byte, error) {
	stride := cols + 1
	if len(data)%stride != 0 {
		data = data[:len(data)-len(data)%stride]
	}
	out := make([]byte, 0, len(data)/stride*cols)
	prev := make([]byte, cols)
	for i := 0; i+stride <= len(data); i += stride {
		typ, row := data[i], slices.Clone(data[i+1:i+stride])
		for j := range row {
			var left, up, upLeft byte
			if j > 0 {
				left, upLeft = row[j-1], prev[j-1]
			}
			up = prev[j]
			switch typ {
			case 0:
			case 1:
				row[j] += left
			case 2:
				row[j] += up
			case 3:
				row[j] += byte((int(left) + int(up)) / 2)
			case 4:
				row[j] += paeth(left, up, upLeft)
			default:
				return nil, fmt.Errorf("%w: bad PNG predictor", ErrPDF)
			}
		}
		out = append(out, row...)
		prev = row
	}
	return out, nil
}

func paeth(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := abs(p-int(a)), abs(p-int(b)), abs(p-int(c))
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// catalog returns the document catalog and its reference.
func (f *pdfFile) catalog() (*pdfDict, pdfRef, error) {
	ref, isRef := f.trailer.get("Root").(pdfRef)
	if !isRef {
		return nil, pdfRef{}, fmt.Errorf("%w: no /Root", ErrPDF)
	}
	d, err := f.dict(ref)
	if err != nil || d == nil {
		return nil, pdfRef{}, fmt.Errorf("%w: no document catalog", ErrPDF)
	}
	return d, ref, nil
}

// pageInfo is a page: its reference, dictionary and inherited boxes.
type pageInfo struct {
	ref  pdfRef
	dict *pdfDict
	box  [4]float64 // CropBox, else MediaBox: x0 y0 x1 y1
}

// pages lists the pages in order, walking /Pages with inheritance of the
// media and crop boxes.
func (f *pdfFile) pages() ([]pageInfo, error) {
	cat, _, err := f.catalog()
	if err != nil {
		return nil, err
	}
	var out []pageInfo
	seen := map[pdfRef]bool{}
	var walk func(v any, media, crop any, depth int) error
	walk = func(v any, media, crop any, depth int) error {
		ref, isRef := v.(pdfRef)
		if !isRef || seen[ref] || depth > maxPDFDepth {
			return fmt.Errorf("%w: bad page tree", ErrPDF)
		}
		seen[ref] = true
		d, err := f.dict(ref)
		if err != nil || d == nil {
			return fmt.Errorf("%w: bad page tree", ErrPDF)
		}
		if m := d.get("MediaBox"); m != nil {
			media = m
		}
		if c := d.get("CropBox"); c != nil {
			crop = c
		}
		kids, hasKids := d.get("Kids").(pdfArray)
		if d.get("Type") == pdfName("Pages") || hasKids && d.get("Type") != pdfName("Page") {
			if r, isRef := d.get("Kids").(pdfRef); isRef {
				k, err := f.resolve(r)
				if err != nil {
					return err
				}
				kids, _ = k.(pdfArray)
			}
			for _, k := range kids {
				if err := walk(k, media, crop, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		p := pageInfo{ref: ref, dict: d, box: [4]float64{0, 0, 612, 792}}
		box := crop
		if box == nil {
			box = media
		}
		if b, err := f.rect(box); err == nil {
			p.box = b
		}
		out = append(out, p)
		return nil
	}
	if err := walk(cat.get("Pages"), nil, nil, 0); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no pages", ErrPDF)
	}
	return out, nil
}

// rect reads a rectangle [x0 y0 x1 y1], normalised.
func (f *pdfFile) rect(v any) ([4]float64, error) {
	o, err := f.resolve(v)
	if err != nil {
		return [4]float64{}, err
	}
	arr, isArr := o.(pdfArray)
	if !isArr || len(arr) != 4 {
		return [4]float64{}, fmt.Errorf("%w: bad rectangle", ErrPDF)
	}
	var r [4]float64
	for i, x := range arr {
		n, isNum := number(x)
		if !isNum {
			return r, fmt.Errorf("%w: bad rectangle", ErrPDF)
		}
		r[i] = n
	}
	if r[0] > r[2] {
		r[0], r[2] = r[2], r[0]
	}
	if r[1] > r[3] {
		r[1], r[3] = r[3], r[1]
	}
	return r, nil
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
