package pkcs11_test

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

const (
	reader1 = "Sim Reader 00 00"
	reader2 = "Sim Reader 00 01"
	goodPIN = ciesim.DefaultPIN
	goodPUK = ciesim.DefaultPUK
)

var testState = sync.OnceValues(ciesim.TestState)

// newCard returns a simulated card with the committed test state.
func newCard(t testing.TB, cfg ciesim.Config) *ciesim.Card {
	t.Helper()
	st, err := testState()
	if err != nil {
		t.Fatalf("loading the test card state: %v", err)
	}
	if cfg.State == nil {
		cfg.State = st
	}
	c, err := ciesim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type env struct {
	t     testing.TB
	src   *simSource
	cache *certcache.Cache
	m     *pkcs11.Module
}

// newEnv makes a source with readers 1 and 2, card in reader 1 (if not
// nil), and a Module with a certificate cache in a temporary directory.
func newEnv(t testing.TB, card *ciesim.Card) *env {
	t.Helper()
	e := &env{t: t, src: newSimSource(reader1, reader2), cache: certcache.New(t.TempDir())}
	if card != nil {
		e.src.Insert(reader1, card)
	}
	e.m = e.module(pkcs11.Config{})
	return e
}

// module starts another Module on the same source and cache ("another
// process").
func (e *env) module(cfg pkcs11.Config) *pkcs11.Module {
	e.t.Helper()
	if cfg.Source == nil {
		cfg.Source = e.src
	}
	if cfg.Cache == nil {
		cfg.Cache = e.cache
	}
	m, err := pkcs11.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { m.Close() })
	return m
}

// open opens a read/write session on slot 1.
func (e *env) open(m *pkcs11.Module) pkcs11.SessionHandle {
	e.t.Helper()
	h, err := m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		e.t.Fatalf("OpenSession: %v", err)
	}
	return h
}

// wantRV fails unless err is the RV want (nil for CKR_OK).
func wantRV(t testing.TB, err error, want pkcs11.RV) {
	t.Helper()
	if want == pkcs11.CKR_OK {
		if err != nil {
			t.Fatalf("got %v, want CKR_OK", err)
		}
		return
	}
	var rv pkcs11.RV
	if !errors.As(err, &rv) || rv != want {
		t.Fatalf("got %v, want %v", err, want)
	}
}

// find returns every object matching tmpl.
func find(t testing.TB, m *pkcs11.Module, h pkcs11.SessionHandle, tmpl ...pkcs11.Attribute) []pkcs11.ObjectHandle {
	t.Helper()
	if err := m.FindObjectsInit(h, tmpl); err != nil {
		t.Fatalf("FindObjectsInit: %v", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		got, err := m.FindObjects(h, 2)
		if err != nil {
			t.Fatalf("FindObjects: %v", err)
		}
		if len(got) == 0 {
			break
		}
		all = append(all, got...)
	}
	if err := m.FindObjectsFinal(h); err != nil {
		t.Fatalf("FindObjectsFinal: %v", err)
	}
	return all
}

// attr reads one attribute with the two-call protocol.
func attr(t testing.TB, m *pkcs11.Module, h pkcs11.SessionHandle, o pkcs11.ObjectHandle, typ pkcs11.AttributeType) []byte {
	t.Helper()
	q := []pkcs11.TemplateEntry{{Type: typ, SizeOnly: true}}
	if err := m.GetAttributeValue(h, o, q); err != nil {
		t.Fatalf("GetAttributeValue(%v) size: %v", typ, err)
	}
	buf := make([]byte, q[0].Len)
	q = []pkcs11.TemplateEntry{{Type: typ, Buffer: buf}}
	if err := m.GetAttributeValue(h, o, q); err != nil {
		t.Fatalf("GetAttributeValue(%v): %v", typ, err)
	}
	return buf[:q[0].Len]
}

func classAttr(c pkcs11.ObjectClass) pkcs11.Attribute {
	return pkcs11.Attribute{Type: pkcs11.CKA_CLASS, Value: ulong(uint(c))}
}

// ulong encodes a CK_ULONG as the C API does (native endian, 8 bytes here).
func ulong(v uint) []byte {
	return binary.NativeEndian.AppendUint64(nil, uint64(v))
}

// text trims the blank padding of a fixed-size field.
func text(b []byte) string { return string(bytes.TrimRight(b, " ")) }

// certOf returns the certificate the simulated card holds.
func certOf(c *ciesim.Card) *x509.Certificate { return c.Certificate() }

// login logs the user in on h.
func login(t testing.TB, m *pkcs11.Module, h pkcs11.SessionHandle) {
	t.Helper()
	if err := m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)); err != nil {
		t.Fatalf("Login: %v", err)
	}
}

// apdus returns the number of APDUs the card received so far.
func apdus(c *ciesim.Card) int { return c.Stats().APDUs }
