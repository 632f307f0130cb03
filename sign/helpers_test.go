package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

// cardSigner behaves like the CIE's crypto.Signer: it exposes only Public
// and Sign, signs PKCS#1 v1.5 and refuses PSS. It counts its signatures.
type cardSigner struct {
	key   *rsa.PrivateKey
	mu    sync.Mutex
	calls int
}

func (s *cardSigner) Public() crypto.PublicKey { return &s.key.PublicKey }

func (s *cardSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, isPSS := opts.(*rsa.PSSOptions); isPSS {
		return nil, errors.New("RSA-PSS is not supported by the card")
	}
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	return rsa.SignPKCS1v15(nil, s.key, opts.HashFunc(), digest)
}

// fixture is the simulator's committed test CA and holder.
type fixture struct {
	st     *ciesim.State
	signer *cardSigner
	cert   *x509.Certificate
	ca     *x509.Certificate
	roots  *x509.CertPool
	now    time.Time // a time inside the certificates' validity
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func testFixture(t testing.TB) fixture {
	t.Helper()
	fixOnce.Do(func() {
		st, err := ciesim.TestState()
		if err != nil {
			fixErr = err
			return
		}
		fix = fixture{st: st, signer: &cardSigner{key: st.HolderKey}, cert: st.HolderCert, ca: st.CACert,
			roots: x509.NewCertPool(), now: st.HolderCert.NotBefore.Add(36*time.Hour + 17*time.Minute)}
		fix.roots.AddCert(st.CACert)
	})
	if fixErr != nil {
		t.Fatalf("loading the simulator state: %v", fixErr)
	}
	return fix
}

// opts returns signing options for the holder at f.now.
func (f fixture) opts() Options {
	return Options{Signer: f.signer, Chain: []*x509.Certificate{f.cert}, Now: func() time.Time { return f.now }}
}

// verifyOpts trusts the test CA and validates at f.now.
func (f fixture) verifyOpts() VerifyOptions {
	return VerifyOptions{Roots: f.roots, Now: func() time.Time { return f.now.Add(time.Hour) }}
}

// otherSigner issues a second holder certificate from the test CA, with
// an OCSP responder URL when ocspURL is not empty.
func (f fixture) otherSigner(t testing.TB, cn, given, surname, cf, ocspURL string) (*cardSigner, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject: pkix.Name{Country: []string{"IT"}, CommonName: cn, SerialNumber: "TINIT-" + cf,
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidGivenName, Value: given}, {Type: oidSurname, Value: surname}}},
		NotBefore: f.cert.NotBefore,
		NotAfter:  f.cert.NotAfter,
		KeyUsage:  x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	if ocspURL != "" {
		tmpl.OCSPServer = []string{ocspURL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca, &key.PublicKey, f.st.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &cardSigner{key: key}, cert
}

// writeTemp writes b to a file in t.TempDir.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// caFile writes the test CA as PEM.
func (f fixture) caFile(t testing.TB) string {
	return writeTemp(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw}))
}

// tool returns the path of an external validator, failing the test with
// the package to install when it is missing (the validators are part of CI).
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this test: apt-get install %s", name, pkg)
	}
	return p
}

// run runs a command and returns its combined output and error.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// signCAdES signs data with f's holder and returns the file.
func signCAdES(t testing.TB, f fixture, data []byte, detached bool) []byte {
	t.Helper()
	var out bytes.Buffer
	err := SignCAdES(context.Background(), &out, bytes.NewReader(data), int64(len(data)), CAdESOptions{Options: f.opts(), Detached: detached})
	if err != nil {
		t.Fatalf("SignCAdES: %v", err)
	}
	return out.Bytes()
}

// only returns the single signature of a report.
func only(t testing.TB, r *Report) *Signature {
	t.Helper()
	if len(r.Signatures) != 1 {
		t.Fatalf("report has %d signatures, want 1", len(r.Signatures))
	}
	return r.Signatures[0]
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
