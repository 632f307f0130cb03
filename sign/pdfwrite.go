package sign

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
)

// This file writes PDF objects and the incremental update (ISO 32000-1
// §7.5.6) that carries a signature: new and replaced objects appended
// after the original bytes, a cross-reference section of the same kind as
// the file's newest one, and a trailer that points back with /Prev. The
// original bytes are never changed.

// writeObject serialises a PDF value.
func writeObject(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(formatReal(x))
	case pdfName:
		writeName(b, x)
	case pdfString:
		writeString(b, x)
	case pdfRef:
		fmt.Fprintf(b, "%d %d R", x.num, x.gen)
	case pdfArray:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(' ')
			}
			writeObject(b, e)
		}
		b.WriteByte(']')
	case *pdfDict:
		b.WriteString("<<")
		for _, k := range x.keys {
			writeName(b, k)
			b.WriteByte(' ')
			writeObject(b, x.vals[k])
		}
		b.WriteString(">>")
	case rawPDF:
		b.Write(x)
	default:
		panic(fmt.Sprintf("sign: cannot write PDF value %T", v))
	}
}

// rawPDF is PDF syntax written as is.
type rawPDF []byte

// formatReal writes a real without exponent, with at most 4 decimals.
func formatReal(f float64) string {
	s := strconv.FormatFloat(f, 'f', 4, 64)
	if bytes.ContainsRune([]byte(s), '.') {
		for s[len(s)-1] == '0' {
			s = s[:len(s)-1]
		}
		s = string(bytes.TrimSuffix([]byte(s), []byte(".")))
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

func writeName(b *bytes.Buffer, n pdfName) {
	b.WriteByte('/')
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c <= ' ' || c > '~' || c == '#' || isDelim(c) {
			fmt.Fprintf(b, "#%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
}

// writeString writes a literal string, or a hex string when it has bytes
// a reader would see as binary.
func writeString(b *bytes.Buffer, s pdfString) {
	binary := false
	for _, c := range s {
		if c < ' ' && c != '\n' && c != '\r' && c != '\t' || c > '~' {
			binary = true
			break
		}
	}
	if binary {
		fmt.Fprintf(b, "<%X>", []byte(s))
		return
	}
	b.WriteByte('(')
	for _, c := range s {
		switch c {
		case '(', ')', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(')')
}

// increment is an incremental update being built in memory.
type increment struct {
	base    int64 // size of the original file
	buf     bytes.Buffer
	offsets map[int]xrefEntry // object number → offset in the whole file and generation
	nextNum int
}

func newIncrement(f *pdfFile) (*increment, error) {
	size, isInt := f.trailer.get("Size").(int64)
	if !isInt || size <= 0 {
		return nil, fmt.Errorf("%w: bad trailer /Size", ErrPDF)
	}
	for num := range f.xref {
		size = max(size, int64(num)+1)
	}
	inc := &increment{base: f.size, offsets: map[int]xrefEntry{}, nextNum: int(size)}
	// The update starts on a new line.
	if last, err := f.readAt(f.size-1, 1); err == nil && last[0] != '\n' && last[0] != '\r' {
		inc.buf.WriteByte('\n')
	}
	return inc, nil
}

// alloc reserves a new object number.
func (inc *increment) alloc() pdfRef {
	r := pdfRef{inc.nextNum, 0}
	inc.nextNum++
	return r
}

// add writes object ref with the value v.
func (inc *increment) add(ref pdfRef, v any) {
	inc.begin(ref)
	writeObject(&inc.buf, v)
	inc.buf.WriteString("\nendobj\n")
}

// addStream writes a stream object; dict gains /Length.
func (inc *increment) addStream(ref pdfRef, dict *pdfDict, data []byte) {
	dict.set("Length", int64(len(data)))
	inc.begin(ref)
	writeObject(&inc.buf, dict)
	inc.buf.WriteString("\nstream\n")
	inc.buf.Write(data)
	inc.buf.WriteString("\nendstream\nendobj\n")
}

func (inc *increment) begin(ref pdfRef) {
	inc.offsets[ref.num] = xrefEntry{typ: 1, off: inc.base + int64(inc.buf.Len()), gen: ref.gen}
	fmt.Fprintf(&inc.buf, "%d %d obj\n", ref.num, ref.gen)
}

// finish writes the cross-reference section and trailer: a table when the
// file's newest section is a table, a stream (uncompressed) otherwise.
func (inc *increment) finish(f *pdfFile) {
	trailer := newDict()
	for _, k := range []pdfName{"Root", "Info", "ID"} {
		if v := f.trailer.get(k); v != nil {
			trailer.set(k, v)
		}
	}
	trailer.set("Prev", f.lastXref)
	if f.xrefIsStm {
		self := inc.alloc()
		start := inc.base + int64(inc.buf.Len())
		inc.offsets[self.num] = xrefEntry{typ: 1, off: start}
		nums, index := inc.runs()
		w := 1
		for v := start; v > 0xFF; v >>= 8 {
			w++
		}
		var data []byte
		for _, n := range nums {
			e := inc.offsets[n]
			data = append(data, 1)
			var off [8]byte
			binary.BigEndian.PutUint64(off[:], uint64(e.off))
			data = append(data, off[8-w:]...)
			data = append(data, byte(e.gen>>8), byte(e.gen))
		}
		d := newDict()
		d.set("Type", pdfName("XRef"))
		d.set("Size", int64(inc.nextNum))
		d.set("W", pdfArray{int64(1), int64(w), int64(2)})
		d.set("Index", index)
		for _, k := range trailer.keys {
			d.set(k, trailer.vals[k])
		}
		inc.addStream(self, d, data)
		fmt.Fprintf(&inc.buf, "startxref\n%d\n%%%%EOF\n", start)
		return
	}
	start := inc.base + int64(inc.buf.Len())
	inc.buf.WriteString("xref\n")
	nums, _ := inc.runs()
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		fmt.Fprintf(&inc.buf, "%d %d\n", nums[i], j-i+1)
		for k := i; k <= j; k++ {
			e := inc.offsets[nums[k]]
			fmt.Fprintf(&inc.buf, "%010d %05d n\r\n", e.off, e.gen)
		}
		i = j + 1
	}
	trailer.set("Size", int64(inc.nextNum))
	inc.buf.WriteString("trailer\n")
	writeObject(&inc.buf, trailer)
	fmt.Fprintf(&inc.buf, "\nstartxref\n%d\n%%%%EOF\n", start)
}

// runs returns the written object numbers in order and the /Index array of
// their consecutive runs.
func (inc *increment) runs() ([]int, pdfArray) {
	nums := make([]int, 0, len(inc.offsets))
	for n := range inc.offsets {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	var index pdfArray
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		index = append(index, int64(nums[i]), int64(j-i+1))
		i = j + 1
	}
	return nums, index
}
