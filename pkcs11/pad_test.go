package pkcs11

import "testing"

func TestPad(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 4, "    "},
		{"CIE", 6, "CIE   "},
		{"exactly", 7, "exactly"},
		{"too long", 3, "too"},
		{"NICOLÒ", 6, "NICOL "}, // Ò is two bytes: cut before it, never in the middle
		{"NICOLÒ", 7, "NICOLÒ"},
		{"àèì", 5, "àè "},
	} {
		dst := make([]byte, tc.n)
		pad(dst, tc.in)
		if string(dst) != tc.want {
			t.Errorf("pad(%q, %d) = %q, want %q", tc.in, tc.n, dst, tc.want)
		}
	}
}

func TestCounterFlags(t *testing.T) {
	const low, final, locked Flags = 1, 2, 4
	for _, tc := range []struct {
		c    counter
		want Flags
	}{
		{counter{max: 3}, 0},
		{counter{known: true, remaining: 3, max: 3}, 0},
		{counter{known: true, remaining: 2, max: 3}, low},
		{counter{known: true, remaining: 1, max: 3}, low | final},
		{counter{known: true, remaining: 0, blocked: true, max: 3}, locked},
		{counter{known: true, remaining: 9, max: 10}, low},
	} {
		if got := tc.c.flags(low, final, locked); got != tc.want {
			t.Errorf("%+v: flags %d, want %d", tc.c, got, tc.want)
		}
	}
}

func TestULongEncoding(t *testing.T) {
	b := ulongAttr(0x0102)
	if len(b) != ulongSize {
		t.Fatalf("length %d", len(b))
	}
	var v uint
	for i := len(b) - 1; i >= 0; i-- { // little endian on the test machines
		v = v<<8 | uint(b[i])
	}
	if v != 0x0102 {
		t.Fatalf("decoded %#x", v)
	}
}
