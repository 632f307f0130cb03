package pkcs11

import (
	"bytes"
	"testing"
)

// FuzzGetAttributeValue feeds arbitrary templates (types, buffer sizes,
// size queries: the caller's input) to an object's two-call protocol.
// Every entry must come back either with the exact value or with
// CK_UNAVAILABLE_INFORMATION, and the call's RV must say which.
func FuzzGetAttributeValue(f *testing.F) {
	o := &object{
		attrs: map[AttributeType][]byte{
			CKA_CLASS: ulongAttr(uint(CKO_PRIVATE_KEY)), CKA_LABEL: []byte(objectLabel),
			CKA_SIGN: boolAttr(true), CKA_VALUE: bytes.Repeat([]byte{0x30}, 1500), CKA_URL: {},
		},
		sensitive: map[AttributeType]bool{CKA_PRIVATE_EXPONENT: true},
	}
	f.Add([]byte{0x00, 0x00, 0x10, 0x03, 0x11, 0x00, 0x02, 0x00, 0x20})
	f.Add([]byte{0x63, 0x01, 0x20, 0x11, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		var tmpl []TemplateEntry
		types := []AttributeType{CKA_CLASS, CKA_LABEL, CKA_SIGN, CKA_VALUE, CKA_URL, CKA_PRIVATE_EXPONENT, CKA_MODULUS}
		for len(b) >= 3 && len(tmpl) < 16 {
			e := TemplateEntry{Type: types[int(b[0])%len(types)], SizeOnly: b[1]&1 == 1}
			if !e.SizeOnly {
				e.Buffer = make([]byte, int(b[2])*8)
			}
			tmpl = append(tmpl, e)
			b = b[3:]
		}
		err := o.fill(tmpl)
		var sensitive, invalid, small bool
		for _, e := range tmpl {
			v, ok := o.attrs[e.Type]
			switch {
			case o.sensitive[e.Type]:
				sensitive = true
				if e.Len != UnavailableInformation {
					t.Fatalf("sensitive %v has length %d", e.Type, e.Len)
				}
			case !ok:
				invalid = true
				if e.Len != UnavailableInformation {
					t.Fatalf("unknown %v has length %d", e.Type, e.Len)
				}
			case e.SizeOnly:
				if e.Len != uint(len(v)) {
					t.Fatalf("size of %v: %d, want %d", e.Type, e.Len, len(v))
				}
			case len(e.Buffer) < len(v):
				small = true
				if e.Len != UnavailableInformation {
					t.Fatalf("short buffer for %v has length %d", e.Type, e.Len)
				}
			default:
				if e.Len != uint(len(v)) || !bytes.Equal(e.Buffer[:e.Len], v) {
					t.Fatalf("%v not copied", e.Type)
				}
			}
		}
		want := error(nil)
		switch {
		case sensitive:
			want = CKR_ATTRIBUTE_SENSITIVE
		case invalid:
			want = CKR_ATTRIBUTE_TYPE_INVALID
		case small:
			want = CKR_BUFFER_TOO_SMALL
		}
		if err != want {
			t.Fatalf("RV %v, want %v", err, want)
		}
	})
}
