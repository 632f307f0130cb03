package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	"golang.org/x/crypto/ocsp"
)

var contract = []byte("Contratto di locazione.\nIl locatore concede in locazione l'immobile sito in Roma.\n")

func verifyBytes(t testing.TB, p7, data []byte, opts VerifyOptions) *Report {
	t.Helper()
	var d io.Reader
	if data != nil {
		d = bytes.NewReader(data)
	}
	r, err := VerifyCAdES(context.Background(), bytes.NewReader(p7), d, opts)
	if err != nil {
		t.Fatalf("VerifyCAdES: %v", err)
	}
	return r
}

func TestCAdESAttachedVerifies(t *testing.T) {
	f := testFixture(t)
	p7 := signCAdES(t, f, contract, false)

	r := verifyBytes(t, p7, nil, f.verifyOpts())
	s := only(t, r)
	if !r.Valid() || s.Verdict != VerdictValid {
		t.Fatalf("verdict %s (%s); integrity %v, ess %v, chain %v", s.Verdict, s.Reason, s.Integrity, s.SigningCertificate, s.Chain)
	}
	if r.Format != FormatCAdESAttached || r.ContentSize != int64(len(contract)) {
		t.Errorf("format %q size %d", r.Format, r.ContentSize)
	}
	if s.Signer.Name != "MARIO ROSSI" || s.Signer.FiscalCode != "RSSMRA80A01H501U" {
		t.Errorf("signer %+v", s.Signer)
	}
	if s.SigningTime == nil || !s.SigningTime.Equal(f.now.Truncate(time.Second)) {
		t.Errorf("signing time %v, want %v", s.SigningTime, f.now)
	}
	if s.Revocation.State != StateNotChecked || s.Reason != "valid; revocation not checked" {
		t.Errorf("revocation %v, reason %q", s.Revocation, s.Reason)
	}
	if !strings.Contains(s.SigningCertificate.Detail, "signing-certificate-v2 matches") {
		t.Errorf("ESS finding %v", s.SigningCertificate)
	}

	var out bytes.Buffer
	levels, err := Extract(context.Background(), &out, bytes.NewReader(p7))
	if err != nil || levels != 1 || !bytes.Equal(out.Bytes(), contract) {
		t.Fatalf("Extract: %d levels, %v, %q", levels, err, out.Bytes())
	}
}

func TestCAdESWithoutTrustAnchorIsNotValid(t *testing.T) {
	f := testFixture(t)
	p7 := signCAdES(t, f, contract, false)
	r := verifyBytes(t, p7, nil, VerifyOptions{Now: f.verifyOpts().Now})
	s := only(t, r)
	if r.Valid() || s.Verdict != VerdictUntrusted || !strings.HasPrefix(s.Reason, "untrusted: no trust anchor") {
		t.Fatalf("without roots: %s, %q", s.Verdict, s.Reason)
	}
	if s.Integrity.State != StateOK {
		t.Errorf("integrity %v", s.Integrity)
	}
	// A CA that did not issue the certificate is no better.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Other CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: f.cert.NotBefore, NotAfter: f.cert.NotAfter, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &other.PublicKey, other)
	oc, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(oc)
	s = only(t, verifyBytes(t, p7, nil, VerifyOptions{Roots: pool, Now: f.verifyOpts().Now}))
	if s.Verdict != VerdictUntrusted || s.Chain.State != StateFailed {
		t.Fatalf("with another CA: %s, %v", s.Verdict, s.Chain)
	}
}

func TestCAdESTamperedByteFails(t *testing.T) {
	f := testFixture(t)
	p7 := signCAdES(t, f, contract, false)
	i := bytes.Index(p7, []byte("Roma"))
	bad := bytes.Clone(p7)
	bad[i] = 'X'
	s := only(t, verifyBytes(t, bad, nil, f.verifyOpts()))
	if s.Verdict != VerdictInvalid || !strings.Contains(s.Reason, "message digest differs") {
		t.Fatalf("tampered content: %s %q", s.Verdict, s.Reason)
	}
	// The last byte is inside the RSA signature.
	bad = bytes.Clone(p7)
	bad[len(bad)-1] ^= 1
	s = only(t, verifyBytes(t, bad, nil, f.verifyOpts()))
	if s.Verdict != VerdictInvalid || !strings.Contains(s.Reason, "does not verify") {
		t.Fatalf("tampered signature: %s %q", s.Verdict, s.Reason)
	}
	// Detached: the wrong original fails.
	p7s := signCAdES(t, f, contract, true)
	s = only(t, verifyBytes(t, p7s, append(bytes.Clone(contract), '!'), f.verifyOpts()))
	if s.Verdict != VerdictInvalid {
		t.Fatalf("detached with another file: %s %q", s.Verdict, s.Reason)
	}
}

func TestCAdESDetachedVerifies(t *testing.T) {
	f := testFixture(t)
	p7s := signCAdES(t, f, contract, true)
	if bytes.Contains(p7s, contract) {
		t.Fatal("the detached signature contains the content")
	}
	r := verifyBytes(t, p7s, contract, f.verifyOpts())
	if !r.Valid() || r.Format != FormatCAdESDetached {
		t.Fatalf("detached: %s %q", only(t, r).Verdict, only(t, r).Reason)
	}
	if _, err := VerifyCAdES(context.Background(), bytes.NewReader(p7s), nil, f.verifyOpts()); err == nil || !strings.Contains(err.Error(), "give the original file") {
		t.Fatalf("detached without data: %v", err)
	}
	if _, err := Extract(context.Background(), io.Discard, bytes.NewReader(p7s)); err == nil {
		t.Fatal("Extract of a .p7s succeeded")
	}
}

// essSubstituted signs a file whose signing-certificate-v2 names another
// certificate than the signer's, the attack the attribute exists against.
func essSubstituted(t *testing.T, f fixture, other *x509.Certificate) []byte {
	t.Helper()
	k, err := (&Options{Signer: f.signer, Chain: []*x509.Certificate{f.cert}}).key()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(contract)
	attrs, err := signedAttributes(attrSpec{contentType: oidData, digest: sum[:], signingTime: f.now, cert: other, hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	set := setOf(0x31, attrs)
	d := sha256.Sum256(set)
	sig, err := k.signDigest(context.Background(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	si, err := k.encodeSignerInfo(set, sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := sdParts{version: 1, digestAlgs: [][]byte{digestAlgorithmID(crypto.SHA256)}, eContentType: oidData,
		certs: [][]byte{f.cert.Raw}, signerInfos: [][]byte{si}}
	t2 := p.trailer()
	return append(append(p.prefix(int64(len(contract)), int64(len(t2))), contract...), t2...)
}

func TestCAdESSigningCertificateIsChecked(t *testing.T) {
	f := testFixture(t)
	_, other := f.otherSigner(t, "VRDGPP80A01H501X/1", "GIUSEPPE", "VERDI", "VRDGPP80A01H501X", "")
	p7 := essSubstituted(t, f, other)
	s := only(t, verifyBytes(t, p7, nil, f.verifyOpts()))
	if s.Integrity.State != StateOK {
		t.Fatalf("integrity %v: the test file should be intact", s.Integrity)
	}
	if s.Verdict != VerdictInvalid || !strings.Contains(s.SigningCertificate.Detail, "substituted") {
		t.Fatalf("substituted ESS: %s %q", s.Verdict, s.SigningCertificate)
	}
	// OpenSSL 3.0 accepts the same file: the check is ours.
	openssl := tool(t, "openssl", "openssl")
	in := writeTemp(t, "ess.p7m", p7)
	out, err := run(openssl, "cms", "-verify", "-inform", "DER", "-in", in, "-CAfile", f.caFile(t), "-purpose", "any", "-out", "/dev/null")
	if err != nil || !strings.Contains(out, "Verification successful") {
		t.Logf("openssl now rejects a substituted ESS certificate (%v): %s", err, out)
	}
}

func TestCAdESOpenSSLAccepts(t *testing.T) {
	f := testFixture(t)
	openssl := tool(t, "openssl", "openssl")
	ca := f.caFile(t)
	data := writeTemp(t, "contract.txt", contract)

	p7m := writeTemp(t, "contract.txt.p7m", signCAdES(t, f, contract, false))
	got := filepath.Join(t.TempDir(), "out.txt")
	out, err := run(openssl, "cms", "-verify", "-inform", "DER", "-in", p7m, "-CAfile", ca, "-purpose", "any", "-binary", "-out", got)
	if err != nil || !strings.Contains(out, "CMS Verification successful") {
		t.Fatalf("openssl cms -verify .p7m: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, contract) {
		t.Fatalf("openssl extracted %q", b)
	}
	p7s := writeTemp(t, "contract.txt.p7s", signCAdES(t, f, contract, true))
	out, err = run(openssl, "cms", "-verify", "-inform", "DER", "-in", p7s, "-content", data, "-CAfile", ca, "-purpose", "any", "-binary", "-out", "/dev/null")
	if err != nil || !strings.Contains(out, "CMS Verification successful") {
		t.Fatalf("openssl cms -verify .p7s: %v\n%s", err, out)
	}
	// OpenSSL sees the CAdES-BES attributes.
	out, err = run(openssl, "cms", "-cmsout", "-print", "-inform", "DER", "-in", p7m)
	if err != nil {
		t.Fatalf("openssl cms -print: %v\n%s", err, out)
	}
	for _, want := range []string{"contentType", "signingTime", "messageDigest", "id-smime-aa-signingCertificateV2", "sha256WithRSAEncryption"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl -print lacks %s:\n%s", want, out)
		}
	}
	// A tampered byte makes OpenSSL fail too.
	b, _ := os.ReadFile(p7m)
	b[bytes.Index(b, []byte("Roma"))] = 'X'
	bad := writeTemp(t, "bad.p7m", b)
	if out, err := run(openssl, "cms", "-verify", "-inform", "DER", "-in", bad, "-CAfile", ca, "-purpose", "any", "-out", "/dev/null"); err == nil {
		t.Fatalf("openssl accepted a tampered file:\n%s", out)
	}
}

func TestCAdESSmallstepParses(t *testing.T) {
	f := testFixture(t)
	p7, err := pkcs7.Parse(signCAdES(t, f, contract, false))
	if err != nil {
		t.Fatalf("pkcs7.Parse: %v", err)
	}
	if !bytes.Equal(p7.Content, contract) {
		t.Errorf("content %q", p7.Content)
	}
	if err := p7.VerifyWithChainAtTime(f.roots, f.now); err != nil {
		t.Fatalf("smallstep verify: %v", err)
	}
}

func TestCAdESParallelAndCounterSignature(t *testing.T) {
	f := testFixture(t)
	signer2, cert2 := f.otherSigner(t, "VRDGPP80A01H501X/1", "GIUSEPPE", "VERDI", "VRDGPP80A01H501X", "")
	first := signCAdES(t, f, contract, false)

	var parallel bytes.Buffer
	opts2 := Options{Signer: signer2, Chain: []*x509.Certificate{cert2}, Now: func() time.Time { return f.now.Add(time.Hour) }}
	if err := AddCAdES(context.Background(), &parallel, bytes.NewReader(first), int64(len(first)), nil, AddOptions{Options: opts2}); err != nil {
		t.Fatalf("AddCAdES parallel: %v", err)
	}
	r := verifyBytes(t, parallel.Bytes(), nil, f.verifyOpts())
	if len(r.Signatures) != 2 || !r.Valid() {
		t.Fatalf("parallel: %d signatures, valid %v", len(r.Signatures), r.Valid())
	}
	if r.Signatures[0].Signer.Surname != "ROSSI" || r.Signatures[1].Signer.Surname != "VERDI" {
		t.Errorf("signers %q %q", r.Signatures[0].Signer.Name, r.Signatures[1].Signer.Name)
	}
	// The first SignerInfo is copied byte for byte.
	sd1, _ := readSignedData(bytes.NewReader(first), nil)
	sd2, _ := readSignedData(bytes.NewReader(parallel.Bytes()), nil)
	if !bytes.Equal(sd1.signers[0].raw, sd2.signers[0].raw) {
		t.Error("the first SignerInfo changed")
	}

	var counter bytes.Buffer
	p := parallel.Bytes()
	if err := AddCAdES(context.Background(), &counter, bytes.NewReader(p), int64(len(p)), nil, AddOptions{Options: f.opts(), Countersign: 2}); err != nil {
		t.Fatalf("AddCAdES countersign: %v", err)
	}
	r = verifyBytes(t, counter.Bytes(), nil, f.verifyOpts())
	if !r.Valid() || len(r.Signatures) != 2 || len(r.Signatures[1].Countersignatures) != 1 {
		t.Fatalf("countersigned: valid %v, %d signatures", r.Valid(), len(r.Signatures))
	}
	cs := r.Signatures[1].Countersignatures[0]
	if cs.ID != "2.1" || cs.Signer.Surname != "ROSSI" || cs.Verdict != VerdictValid {
		t.Fatalf("counter-signature %s by %s: %s %q", cs.ID, cs.Signer.Name, cs.Verdict, cs.Reason)
	}

	// Independent validators still accept every signature.
	openssl := tool(t, "openssl", "openssl")
	in := writeTemp(t, "counter.p7m", counter.Bytes())
	out, err := run(openssl, "cms", "-verify", "-inform", "DER", "-in", in, "-CAfile", f.caFile(t), "-purpose", "any", "-out", "/dev/null")
	if err != nil || !strings.Contains(out, "CMS Verification successful") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	p7, err := pkcs7.Parse(counter.Bytes())
	if err != nil || p7.VerifyWithChainAtTime(f.roots, f.now) != nil {
		t.Fatalf("smallstep: %v", err)
	}

	// A counter-signature over a changed signature value fails, and only it.
	sd, _ := readSignedData(bytes.NewReader(counter.Bytes()), nil)
	mangled := bytes.Clone(counter.Bytes())
	i := bytes.Index(mangled, sd.signers[1].signature)
	mangled[i+10] ^= 0xFF
	r = verifyBytes(t, mangled, nil, f.verifyOpts())
	if r.Signatures[0].Verdict != VerdictValid || r.Signatures[1].Verdict != VerdictInvalid ||
		r.Signatures[1].Countersignatures[0].Verdict != VerdictInvalid {
		t.Fatalf("mangled signature 2: %s, %s, %s", r.Signatures[0].Verdict, r.Signatures[1].Verdict, r.Signatures[1].Countersignatures[0].Verdict)
	}
}

func TestCAdESAddRefusesForeignContent(t *testing.T) {
	f := testFixture(t)
	p7s := signCAdES(t, f, contract, true)
	for name, tc := range map[string]struct {
		b    []byte
		want bool
	}{"p7s": {p7s, true}, "p7m": {signCAdES(t, f, contract, false), false}} {
		if got, err := IsDetached(bytes.NewReader(tc.b)); err != nil || got != tc.want {
			t.Errorf("IsDetached(%s) = %v, %v", name, got, err)
		}
	}
	err := AddCAdES(context.Background(), io.Discard, bytes.NewReader(p7s), int64(len(p7s)), strings.NewReader("another file"), AddOptions{Options: f.opts()})
	if err == nil || !strings.Contains(err.Error(), "does not cover this content") {
		t.Fatalf("adding to a .p7s with the wrong original: %v", err)
	}
	var out bytes.Buffer
	if err := AddCAdES(context.Background(), &out, bytes.NewReader(p7s), int64(len(p7s)), bytes.NewReader(contract), AddOptions{Options: f.opts()}); err != nil {
		t.Fatal(err)
	}
	if r := verifyBytes(t, out.Bytes(), contract, f.verifyOpts()); len(r.Signatures) != 2 || !r.Valid() {
		t.Fatalf("detached parallel: %d signatures", len(r.Signatures))
	}
	if err := AddCAdES(context.Background(), io.Discard, bytes.NewReader(p7s), int64(len(p7s)), nil, AddOptions{Options: f.opts(), Countersign: 3}); err == nil {
		t.Fatal("counter-signing a missing signature succeeded")
	}
}

func TestCAdESBase64AndNested(t *testing.T) {
	f := testFixture(t)
	inner := signCAdES(t, f, contract, false)
	outer := signCAdES(t, f, inner, false)
	b64 := []byte(base64.StdEncoding.EncodeToString(outer))
	var wrapped []byte
	for len(b64) > 64 {
		wrapped = append(append(wrapped, b64[:64]...), '\r', '\n')
		b64 = b64[64:]
	}
	wrapped = append(wrapped, b64...)
	pemmed := pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: outer})

	for name, in := range map[string][]byte{"DER": outer, "Base64": wrapped, "PEM": pemmed} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			levels, err := Extract(context.Background(), &out, bytes.NewReader(in))
			if err != nil || levels != 2 || !bytes.Equal(out.Bytes(), contract) {
				t.Fatalf("Extract: %d levels, %v, %q", levels, err, out.String())
			}
			r := verifyBytes(t, in, nil, f.verifyOpts())
			if !r.Valid() || r.Nested == nil || !r.Nested.Valid() || r.Nested.ContentSize != int64(len(contract)) {
				t.Fatalf("nested verify: valid %v, nested %+v", r.Valid(), r.Nested)
			}
		})
	}
	// A Base64 inner level is unwrapped as well.
	outer64 := signCAdES(t, f, []byte(base64.StdEncoding.EncodeToString(inner)), false)
	var out bytes.Buffer
	if levels, err := Extract(context.Background(), &out, bytes.NewReader(outer64)); err != nil || levels != 2 || !bytes.Equal(out.Bytes(), contract) {
		t.Fatalf("Base64 inside DER: %d levels, %v", levels, err)
	}
	if _, err := VerifyCAdES(context.Background(), strings.NewReader("hello"), nil, f.verifyOpts()); !errors.Is(err, ErrNotSignedData) {
		t.Fatalf("plain text: %v", err)
	}
}

// TestCAdESOpenSSLStreamedBER verifies what OpenSSL writes with -stream:
// BER with indefinite lengths and the content in chunks.
func TestCAdESOpenSSLStreamedBER(t *testing.T) {
	f := testFixture(t)
	openssl := tool(t, "openssl", "openssl")
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // several BER chunks
	in := filepath.Join(dir, "data.bin")
	os.WriteFile(in, data, 0o600)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, f.st.HolderKey)})
	key := filepath.Join(dir, "key.pem")
	os.WriteFile(key, keyPEM, 0o600)
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.cert.Raw}), 0o600)
	p7 := filepath.Join(dir, "data.p7m")
	out, err := run(openssl, "cms", "-sign", "-binary", "-nodetach", "-stream", "-cades", "-md", "sha256",
		"-in", in, "-signer", cert, "-inkey", key, "-outform", "DER", "-out", p7)
	if err != nil {
		t.Fatalf("openssl cms -sign: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(p7)
	if b[1] != 0x80 {
		t.Fatalf("OpenSSL wrote definite lengths (%x); the test wants BER", b[:4])
	}
	r := verifyBytes(t, b, nil, VerifyOptions{Roots: f.roots})
	if s := only(t, r); !r.Valid() || r.ContentSize != int64(len(data)) {
		t.Fatalf("OpenSSL's BER file: %s %q, %d bytes", s.Verdict, s.Reason, r.ContentSize)
	}
	var got bytes.Buffer
	if _, err := Extract(context.Background(), &got, bytes.NewReader(b)); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("Extract BER: %v", err)
	}
	// Adding a parallel signature turns the file into DER and keeps OpenSSL's signature valid.
	var added bytes.Buffer
	if err := AddCAdES(context.Background(), &added, bytes.NewReader(b), int64(len(b)), nil, AddOptions{Options: f.opts()}); err != nil {
		t.Fatal(err)
	}
	if r := verifyBytes(t, added.Bytes(), nil, VerifyOptions{Roots: f.roots}); len(r.Signatures) != 2 || !r.Valid() {
		t.Fatalf("parallel on BER: %d signatures, valid %v", len(r.Signatures), r.Valid())
	}
}

func mustPKCS8(t *testing.T, k crypto.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ecdsaSigner exposes only Public and Sign, like a token.
type ecdsaSigner struct{ k *ecdsa.PrivateKey }

func (s ecdsaSigner) Public() crypto.PublicKey { return &s.k.PublicKey }
func (s ecdsaSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, d, o)
}

func TestCAdESECDSAUsesIndefiniteOuterLengths(t *testing.T) {
	f := testFixture(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "EC signer"},
		NotBefore: f.cert.NotBefore, NotAfter: f.cert.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, f.ca, &k.PublicKey, f.st.CAKey)
	cert, _ := x509.ParseCertificate(der)
	var out bytes.Buffer
	opts := CAdESOptions{Options: Options{Signer: ecdsaSigner{k}, Chain: []*x509.Certificate{cert}, Now: func() time.Time { return f.now }}}
	if err := SignCAdES(context.Background(), &out, bytes.NewReader(contract), int64(len(contract)), opts); err != nil {
		t.Fatal(err)
	}
	if out.Bytes()[1] != 0x80 {
		t.Fatalf("ECDSA .p7m starts %x, want indefinite length", out.Bytes()[:2])
	}
	if r := verifyBytes(t, out.Bytes(), nil, f.verifyOpts()); !r.Valid() {
		t.Fatalf("ECDSA: %q", only(t, r).Reason)
	}
	openssl := tool(t, "openssl", "openssl")
	in := writeTemp(t, "ec.p7m", out.Bytes())
	if o, err := run(openssl, "cms", "-verify", "-inform", "DER", "-in", in, "-CAfile", f.caFile(t), "-purpose", "any", "-out", "/dev/null"); err != nil {
		t.Fatalf("openssl on the ECDSA file: %v\n%s", err, o)
	}
}

func TestSignRefusesMismatchedKey(t *testing.T) {
	f := testFixture(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	opts := f.opts()
	opts.Signer = &cardSigner{key: other}
	err := SignCAdES(context.Background(), io.Discard, bytes.NewReader(contract), int64(len(contract)), CAdESOptions{Options: opts})
	if err == nil || !strings.Contains(err.Error(), "does not match the certificate") {
		t.Fatalf("mismatched key: %v", err)
	}
	// A signer that answers with another key's signature is caught too.
	opts = f.opts()
	opts.Signer = &lyingSigner{pub: &f.st.HolderKey.PublicKey, key: other}
	err = SignCAdES(context.Background(), io.Discard, bytes.NewReader(contract), int64(len(contract)), CAdESOptions{Options: opts, Detached: true})
	if err == nil || !strings.Contains(err.Error(), "does not match the certificate's public key") {
		t.Fatalf("lying signer: %v", err)
	}
}

type lyingSigner struct {
	pub *rsa.PublicKey
	key *rsa.PrivateKey
}

func (s *lyingSigner) Public() crypto.PublicKey { return s.pub }
func (s *lyingSigner) Sign(_ io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return rsa.SignPKCS1v15(nil, s.key, o.HashFunc(), d)
}

func TestCAdESSizeMismatch(t *testing.T) {
	f := testFixture(t)
	err := SignCAdES(context.Background(), io.Discard, bytes.NewReader(contract), int64(len(contract))+1, CAdESOptions{Options: f.opts()})
	if !errors.Is(err, ErrContentChanged) {
		t.Fatalf("short content: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := SignCAdES(ctx, io.Discard, bytes.NewReader(contract), int64(len(contract)), CAdESOptions{Options: f.opts()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// zeroReader yields n zero bytes without holding them.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	m := min(int64(len(p)), z.n)
	clear(p[:m])
	z.n -= m
	return int(m), nil
}

// TestCAdESConstantMemory signs 256 MiB attached and checks that the heap
// allocated stays far below the content size.
func TestCAdESConstantMemory(t *testing.T) {
	f := testFixture(t)
	const size = 256 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var n int64
	cw := &countWriter{w: io.Discard, n: &n}
	if err := SignCAdES(context.Background(), cw, &zeroReader{size}, size, CAdESOptions{Options: f.opts()}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("signing 256 MiB allocated %d MiB", alloc>>20)
	}
	if n < size || n > size+4096 {
		t.Fatalf("wrote %d bytes", n)
	}
}

func TestCAdESProgress(t *testing.T) {
	f := testFixture(t)
	data := make([]byte, 3<<20+5)
	var calls []int64
	opts := f.opts()
	opts.Progress = func(done, total int64) {
		if total != int64(len(data)) {
			t.Errorf("total %d", total)
		}
		calls = append(calls, done)
	}
	if err := SignCAdES(context.Background(), io.Discard, bytes.NewReader(data), int64(len(data)), CAdESOptions{Options: opts}); err != nil {
		t.Fatal(err)
	}
	if len(calls) < 4 || calls[len(calls)-1] != int64(len(data)) {
		t.Fatalf("progress calls %v", calls)
	}
}

// ocspResponder answers OCSP requests for the test CA with the given status.
func ocspResponder(t *testing.T, f fixture, status int) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tmpl := ocsp.Response{Status: status, SerialNumber: req.SerialNumber, ThisUpdate: f.now, NextUpdate: f.now.Add(72 * time.Hour)}
		if status == ocsp.Revoked {
			tmpl.RevokedAt = f.now.Add(-time.Hour)
		}
		resp, err := ocsp.CreateResponse(f.ca, f.ca, tmpl, f.st.CAKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
}

func TestCAdESRevocation(t *testing.T) {
	f := testFixture(t)
	for _, tc := range []struct {
		status  int
		verdict Verdict
		state   State
	}{
		{ocsp.Good, VerdictValid, StateOK},
		{ocsp.Revoked, VerdictInvalid, StateFailed},
		{ocsp.Unknown, VerdictIndeterminate, StateUnknown},
	} {
		srv := ocspResponder(t, f, tc.status)
		signer, cert := f.otherSigner(t, "VRDGPP80A01H501X/1", "GIUSEPPE", "VERDI", "VRDGPP80A01H501X", srv.URL)
		var p7 bytes.Buffer
		opts := CAdESOptions{Options: Options{Signer: signer, Chain: []*x509.Certificate{cert}, Now: func() time.Time { return f.now }}}
		if err := SignCAdES(context.Background(), &p7, bytes.NewReader(contract), int64(len(contract)), opts); err != nil {
			t.Fatal(err)
		}
		vo := f.verifyOpts()
		offline := only(t, verifyBytes(t, p7.Bytes(), nil, vo))
		if offline.Revocation.String() != "not checked: offline" || offline.Reason != "valid; revocation not checked" {
			t.Errorf("offline: %v", offline.Revocation)
		}
		vo.Online = true
		s := only(t, verifyBytes(t, p7.Bytes(), nil, vo))
		if s.Verdict != tc.verdict || s.Revocation.State != tc.state {
			t.Errorf("OCSP status %d: verdict %s, revocation %v", tc.status, s.Verdict, s.Revocation)
		}
		srv.Close()
		// A responder that is down gives "unknown", never "good".
		s = only(t, verifyBytes(t, p7.Bytes(), nil, vo))
		if s.Revocation.State != StateUnknown || s.Verdict != VerdictIndeterminate {
			t.Errorf("responder down: %v, %s", s.Revocation, s.Verdict)
		}
	}
}

func BenchmarkCAdES1MiB(b *testing.B) {
	f := testFixture(b)
	data := make([]byte, 1<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := SignCAdES(context.Background(), io.Discard, bytes.NewReader(data), int64(len(data)), CAdESOptions{Options: f.opts()}); err != nil {
			b.Fatal(err)
		}
	}
}
