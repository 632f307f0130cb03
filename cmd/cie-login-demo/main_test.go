package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// simFile is a file of the simulator's test state (testdata/sim).
func simFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "testdata", "sim", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// holderCert is the simulated card's certificate with its key, as a TLS
// client certificate (the card's key signs the same way).
func holderCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(simFile(t, "holder-cert.pem"), simFile(t, "holder-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// foreignCert is a client certificate of another CA with the same subject.
func foreignCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "RSSMRA80A01H501U/635874769602", Country: []string{"IT"}},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key)}
}

// startServer runs the command with port 0 and returns its URL, the
// server certificate's pool and the log.
func startServer(t *testing.T, extra ...string) (string, *x509.CertPool, *lockedWriter) {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath, caPath := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	args := append([]string{"--listen", "127.0.0.1:0", "--ca", simFile(t, "ca-cert.pem"),
		"--server-cert", certPath, "--server-key", keyPath, "--server-ca", caPath}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logw := &lockedWriter{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, pw, logw); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit code %d; log:\n%s", code, logw.String())
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no 'listening' line: %v; log:\n%s", err, logw.String())
	}
	go io.Copy(io.Discard, pr)
	url := regexp.MustCompile(`https://\S+/`).FindString(line)
	if url == "" {
		t.Fatalf("line %q has no URL", line)
	}
	pemBytes, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("server key file: %v %v", fi.Mode(), err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("the CA file holds no certificate")
	}
	return url, pool, logw
}

// lockedWriter collects the server's log while tests read it.
type lockedWriter struct {
	mu sync.Mutex
	w  strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func get(t *testing.T, url string, cfg *tls.Config) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestLoginPages(t *testing.T) {
	url, pool, _ := startServer(t)
	holder := holderCert(t)

	t.Run("the CIE holder is greeted", func(t *testing.T) {
		code, body, err := get(t, url, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{holder}})
		if err != nil || code != http.StatusOK {
			t.Fatalf("%d %v\n%s", code, err, body)
		}
		for _, want := range []string{
			`<h1 id="greeting">Benvenuto, MARIO ROSSI!</h1>`,
			`<dd id="fiscal-code">RSSMRA80A01H501U</dd>`,
			`<dd id="card-serial">635874769602</dd>`,
			`TLS 1.2`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q:\n%s", want, body)
			}
		}
	})
	t.Run("no certificate: a page, not a TLS alert", func(t *testing.T) {
		code, body, err := get(t, url, &tls.Config{RootCAs: pool})
		if err != nil || code != http.StatusUnauthorized || !strings.Contains(body, `<h1 id="refused">No certificate</h1>`) {
			t.Fatalf("%d %v\n%s", code, err, body)
		}
		if strings.Contains(body, "Benvenuto") {
			t.Fatal("greeted without a certificate")
		}
	})
	t.Run("another CA: a page that says so", func(t *testing.T) {
		code, body, err := get(t, url, &tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := foreignCert(t)
			return &c, nil
		}})
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "not issued by the CIE certification authority") {
			t.Fatalf("%d %v\n%s", code, err, body)
		}
		if strings.Contains(body, "Benvenuto") {
			t.Fatal("greeted with a foreign certificate")
		}
	})
	t.Run("the CertificateRequest names the CIE CA", func(t *testing.T) {
		ca, _ := os.ReadFile(simFile(t, "ca-cert.pem"))
		blk, _ := pem.Decode(ca)
		caCert, _ := x509.ParseCertificate(blk.Bytes)
		var names [][]byte
		get(t, url, &tls.Config{RootCAs: pool, GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			names = cri.AcceptableCAs
			return &tls.Certificate{}, nil
		}})
		if len(names) != 1 || string(names[0]) != string(caCert.RawSubject) {
			t.Fatalf("acceptable CAs %q, want the CIE CA's subject", names)
		}
	})
	t.Run("TLS 1.2 only by default", func(t *testing.T) {
		_, _, err := get(t, url, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{holder}})
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("a TLS 1.3-only client: %v", err)
		}
	})
	t.Run("an unknown server certificate is refused by the client", func(t *testing.T) {
		if _, _, err := get(t, url, &tls.Config{Certificates: []tls.Certificate{holder}}); err == nil {
			t.Fatal("the self-signed server certificate was accepted without being trusted")
		}
	})
}

func TestTLS13Offered(t *testing.T) {
	url, pool, logs := startServer(t, "--tls13")
	// A TLS 1.3 client with a key that can sign PSS logs in over TLS 1.3.
	code, body, err := get(t, url, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{holderCert(t)}})
	if err != nil || code != http.StatusOK || !strings.Contains(body, "TLS 1.3") {
		t.Fatalf("%d %v\n%s", code, err, body)
	}
	// The CertificateRequest of TLS 1.3 lists no PKCS#1 v1.5 scheme: the
	// CIE cannot answer it.
	var schemes []tls.SignatureScheme
	get(t, url, &tls.Config{RootCAs: pool, GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		schemes = cri.SignatureSchemes
		return &tls.Certificate{}, nil
	}})
	for _, s := range schemes {
		if s == tls.PKCS1WithSHA256 || s == tls.PKCS1WithSHA384 || s == tls.PKCS1WithSHA512 {
			t.Errorf("TLS 1.3 CertificateRequest offers %v", s)
		}
	}
	if len(schemes) == 0 {
		t.Fatal("no CertificateRequest seen")
	}
	if !strings.Contains(logs.String(), "tls=\"TLS 1.3\"") {
		t.Errorf("the log does not show the TLS version:\n%s", logs.String())
	}
}

func TestServerCertificateReused(t *testing.T) {
	dir := t.TempDir()
	c, k, ca := filepath.Join(dir, "s.pem"), filepath.Join(dir, "s.key"), filepath.Join(dir, "ca.pem")
	first, err := serverCertificate(c, k, ca, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	second, err := serverCertificate(c, k, ca, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if string(first.Certificate[0]) != string(second.Certificate[0]) {
		t.Fatal("the existing certificate was replaced")
	}
	// A browser that trusts the CA accepts the server certificate: not a
	// CA itself, issued by the CA, for 127.0.0.1.
	leaf, _ := x509.ParseCertificate(first.Certificate[0])
	caPEM, _ := os.ReadFile(ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if leaf.IsCA || len(first.Certificate) != 2 {
		t.Fatalf("server certificate IsCA=%v, chain of %d", leaf.IsCA, len(first.Certificate))
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	os.Remove(k)
	if _, err := serverCertificate(c, k, ca, time.Now()); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}

func TestUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := run(context.Background(), nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--ca") {
		t.Fatalf("no --ca: %d %q", code, errb.String())
	}
	if code := run(context.Background(), []string{"--ca", "/nonexistent"}, &out, &errb); code != 1 {
		t.Fatalf("missing CA file: %d", code)
	}
}
