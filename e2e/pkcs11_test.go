package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// p11 is a run of PKCS#11 consumers against libcie-pkcs11, each in its own
// process, with a private home and configuration directory (so a private
// certificate cache) and the module's diagnostics in a log file.
type p11 struct {
	t      *testing.T
	module string
	home   string
	log    string
	reader string
}

// buildModule builds bin/libcie-pkcs11.so the way the release does
// (c-shared, exports trimmed by the version script) into dir.
func buildModule(t *testing.T, dir string) string {
	t.Helper()
	root := testbench.ModuleRoot(t)
	out := filepath.Join(dir, "libcie-pkcs11.so")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath",
		"-ldflags", "-s -w -extldflags=-Wl,--version-script="+filepath.Join(root, "cmd", "cie-pkcs11", "exports.map"),
		"-o", out, "./cmd/cie-pkcs11")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the module: %v\n%s", err, b)
	}
	nm, err := exec.Command("nm", "-D", "--defined-only", out).Output()
	if err != nil {
		t.Fatalf("nm: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(nm)), "\n") {
		if f := strings.Fields(line); len(f) == 3 && !strings.HasPrefix(f[2], "C_") {
			t.Errorf("the module exports %s; only C_* symbols may be exported", f[2])
		}
	}
	return out
}

func newP11(t *testing.T, module, reader string) *p11 {
	home := t.TempDir()
	p := &p11{t: t, module: module, home: home, log: filepath.Join(home, "pkcs11.log"), reader: reader}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				t.Logf("module log:\n%s", lastLines(string(b), 60))
			}
		}
	})
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *p11) env() []string {
	return append(os.Environ(), "HOME="+p.home, "XDG_CONFIG_HOME="+filepath.Join(p.home, ".config"), "CIE_PKCS11_LOG="+p.log)
}

// run runs a program and returns its combined output and exit code.
func (p *p11) run(name string, args ...string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = p.env()
	cmd.Dir = p.home
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return out.String(), ee.ExitCode()
	}
	p.t.Fatalf("%s %q: %v\n%s", name, args, err, out.String())
	return "", -1
}

// tool runs pkcs11-tool on the card's slot and wants exit code 0.
func (p *p11) tool(args ...string) string {
	p.t.Helper()
	out, code := p.toolCode(args...)
	if code != 0 {
		p.t.Fatalf("pkcs11-tool %q exited %d:\n%s", args, code, out)
	}
	return out
}

func (p *p11) toolCode(args ...string) (string, int) {
	p.t.Helper()
	full := append([]string{"--module", p.module, "--slot-description", p.reader}, args...)
	return p.run("pkcs11-tool", full...)
}

func (p *p11) file(name string, content []byte) string {
	p.t.Helper()
	path := filepath.Join(p.home, name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

func mustMatch(t *testing.T, what, out, pattern string) {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(out) {
		t.Fatalf("%s: output does not match %q:\n%s", what, pattern, out)
	}
}

// TestPKCS11Module drives the real shared library from outside, through
// pcscd + vpcd + cie-sim: OpenSC's pkcs11-tool first.
func TestPKCS11Module(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	module := buildModule(t, t.TempDir())
	holder := stateCertificate(t)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: holder.Raw})

	t.Run("pkcs11-tool", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "gemalto")
		p := newP11(t, module, card.Reader())

		out := p.tool("-I", "-L", "-M")
		mustMatch(t, "-I", out, `Cryptoki version 3\.0`)
		mustMatch(t, "-I", out, `Manufacturer\s+CIE Desktop`)
		mustMatch(t, "-L", out, `token label\s+: CIE \d{12}\n`)
		mustMatch(t, "-L", out, `token manufacturer\s+: IPZS`)
		mustMatch(t, "-L", out, `token model\s+: Gemalto`)
		mustMatch(t, "-L", out, `token flags\s+: login required, token initialized, PIN initialized\n`)
		mustMatch(t, "-L", out, `serial num\s+: \d{12}\n`)
		for _, m := range []string{"RSA-PKCS", "SHA1-RSA-PKCS", "SHA224-RSA-PKCS", "SHA256-RSA-PKCS", "SHA384-RSA-PKCS", "SHA512-RSA-PKCS"} {
			mustMatch(t, "-M", out, `\n\s+`+regexp.QuoteMeta(m)+`, keySize=\{2048,2048\}, hw, sign\n`)
		}
		if strings.Contains(out, "PSS") {
			t.Errorf("-M lists a PSS mechanism:\n%s", out)
		}

		// Unpaired: nothing before the PIN.
		if out := p.tool("-O"); strings.Contains(out, "Object") {
			t.Fatalf("objects of an unpaired card before login:\n%s", out)
		}
		// A malformed PIN does not reach the card.
		out, code := p.toolCode("--login", "--pin", "1234", "-O")
		if code == 0 || !strings.Contains(out, "CKR_PIN_LEN_RANGE") {
			t.Fatalf("a 4-digit PIN: exit %d\n%s", code, out)
		}
		if tries, _ := card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("after a malformed PIN: %s", tries)
		}

		// First login: the objects, and the pairing.
		out = p.tool("--login", "--pin", defaultPIN, "-O")
		mustMatch(t, "-O after login", out, `Certificate Object; type = X\.509 cert\n\s+label:\s+CIE Authentication`)
		mustMatch(t, "-O after login", out, `Public Key Object; RSA 2048 bits`)
		mustMatch(t, "-O after login", out, `Private Key Object; RSA\s*\n`)
		mustMatch(t, "-O after login", out, `Usage:\s+sign`)

		// From now on, in any process: certificate and public key without a PIN.
		out = p.tool("-O")
		mustMatch(t, "-O paired", out, `Certificate Object`)
		mustMatch(t, "-O paired", out, `Public Key Object`)
		if strings.Contains(out, "Private Key Object") {
			t.Fatalf("private key visible without login:\n%s", out)
		}
		mustMatch(t, "-L paired", p.tool("-L"), `token label\s+: MARIO ROSSI\s*\n`)

		// The certificate read back is the card's, DER-exact.
		der := filepath.Join(p.home, "cert.der")
		p.tool("--read-object", "--type", "cert", "--label", "CIE Authentication", "--output-file", der)
		if got, _ := os.ReadFile(der); !bytes.Equal(got, holder.Raw) {
			t.Fatal("the certificate object is not the card's certificate")
		}
		certFile := p.file("cert.pem", certPEM)
		pubFile := filepath.Join(p.home, "pub.pem")
		if out, code := p.run("openssl", "x509", "-in", certFile, "-pubkey", "-noout", "-out", pubFile); code != 0 {
			t.Fatalf("openssl x509: %s", out)
		}

		// Every mechanism signs what openssl verifies against the certificate.
		data := p.file("data.txt", []byte("Entra con CIE — livello 3\n"))
		for _, m := range []struct{ mech, dgst string }{
			{"SHA1-RSA-PKCS", "-sha1"}, {"SHA224-RSA-PKCS", "-sha224"}, {"SHA256-RSA-PKCS", "-sha256"},
			{"SHA384-RSA-PKCS", "-sha384"}, {"SHA512-RSA-PKCS", "-sha512"},
		} {
			sig := filepath.Join(p.home, m.mech+".sig")
			p.tool("--login", "--pin", defaultPIN, "--sign", "-m", m.mech, "--input-file", data, "--output-file", sig)
			out, code := p.run("openssl", "dgst", m.dgst, "-verify", pubFile, "-signature", sig, data)
			if code != 0 || !strings.Contains(out, "Verified OK") {
				t.Errorf("%s: openssl does not verify the signature: %s", m.mech, out)
			}
		}
		// CKM_RSA_PKCS over the caller's DigestInfo, as TLS 1.2 clients do.
		content, _ := os.ReadFile(data)
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			var digest []byte
			switch h {
			case crypto.SHA1:
				d := sha1.Sum(content)
				digest = d[:]
			case crypto.SHA256:
				d := sha256.Sum256(content)
				digest = d[:]
			case crypto.SHA384:
				d := sha512.Sum384(content)
				digest = d[:]
			case crypto.SHA512:
				d := sha512.Sum512(content)
				digest = d[:]
			}
			di, _ := cie.DigestInfo(h, digest)
			in := p.file(fmt.Sprintf("di-%v.bin", h), di)
			sig := filepath.Join(p.home, fmt.Sprintf("rsa-pkcs-%v.sig", h))
			p.tool("--login", "--pin", defaultPIN, "--sign", "-m", "RSA-PKCS", "--input-file", in, "--output-file", sig)
			// Recover what was signed with the public key: PKCS#1 v1.5
			// type 1 around exactly the DigestInfo.
			rec := filepath.Join(p.home, fmt.Sprintf("rsa-pkcs-%v.rec", h))
			out, code := p.run("openssl", "pkeyutl", "-verifyrecover", "-pubin", "-inkey", pubFile, "-in", sig, "-out", rec)
			if got, _ := os.ReadFile(rec); code != 0 || !bytes.Equal(got, di) {
				t.Errorf("RSA-PKCS over a %v DigestInfo: recovered %x, want %x (%s)", h, got, di, out)
			}
		}

		// pkcs11-tool's own test suite.
		out = p.tool("--login", "--pin", defaultPIN, "--test")
		mustMatch(t, "--test", out, `No errors`)
		t.Logf("pkcs11-tool --test:\n%s", out)

		// Change the PIN, then use the new one.
		const newPIN = "24681357"
		p.tool("--login", "--pin", defaultPIN, "--change-pin", "--new-pin", newPIN)
		out, code = p.toolCode("--login", "--pin", defaultPIN, "-O")
		if code == 0 || !strings.Contains(out, "CKR_PIN_INCORRECT") {
			t.Fatalf("the old PIN still works: %d\n%s", code, out)
		}
		p.tool("--login", "--pin", newPIN, "-O")

		// Block the PIN, unblock it as the SO with the PUK.
		for range 2 {
			p.toolCode("--login", "--pin", "11112222", "-O")
		}
		mustMatch(t, "-L with one try left", p.tool("-L"), `token flags\s+: .*user PIN count low, final user PIN try`)
		out, _ = p.toolCode("--login", "--pin", "11112222", "-O")
		mustMatch(t, "third wrong PIN", out, `CKR_PIN_LOCKED`)
		mustMatch(t, "-L locked", p.tool("-L"), `user PIN locked`)
		const unblockedPIN = "13572468"
		p.tool("--login", "--login-type", "so", "--so-pin", defaultPUK, "--init-pin", "--new-pin", unblockedPIN)
		p.tool("--login", "--pin", unblockedPIN, "-O")
		if tries, _ := card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("after unblocking: %s", tries)
		}

		// Removed, the slot is empty; inserted again, the paired card is back.
		waitCard := func(present bool) {
			t.Helper()
			for range 100 {
				if st, err := bench.Status(card.Reader()); err == nil && st.Present == present {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("pcscd did not see the card present=%v", present)
		}
		if ans, err := card.Control("remove"); ans != "ok" {
			t.Fatalf("remove: %q %v", ans, err)
		}
		waitCard(false)
		out, _ = p.run("pkcs11-tool", "--module", p.module, "-L")
		mustMatch(t, "-L without the card", out, regexp.QuoteMeta(card.Reader())+`\s*\n\s+\(empty\)`)
		if ans, err := card.Control("insert"); ans != "ok" {
			t.Fatalf("insert: %q %v", ans, err)
		}
		waitCard(true)
		mustMatch(t, "-L after re-insertion", p.tool("-L"), `token label\s+: MARIO ROSSI\s*\n`)
	})

	t.Run("p11tool", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "nxp")
		p := newP11(t, module, card.Reader())
		out, code := p.run("p11tool", "--provider", module, "--list-tokens")
		if code != 0 {
			t.Fatalf("p11tool --list-tokens: %d\n%s", code, out)
		}
		mustMatch(t, "--list-tokens", out, `Label: CIE \d{12}\n`)
		mustMatch(t, "--list-tokens", out, `Manufacturer: IPZS\n`)
		mustMatch(t, "--list-tokens", out, `Model: NXP\n`)
		p.pair()
		out, code = p.run("p11tool", "--provider", module, "--list-all-certs", "pkcs11:token=MARIO%20ROSSI")
		if code != 0 {
			t.Fatalf("p11tool --list-all-certs: %d\n%s", code, out)
		}
		mustMatch(t, "--list-all-certs", out, `object=CIE%20Authentication;type=cert`)
		out, code = p.run("p11tool", "--provider", module, "--login", "--set-pin", defaultPIN, "--test-sign", "pkcs11:token=MARIO%20ROSSI;object=CIE%20Authentication")
		if code != 0 {
			t.Fatalf("p11tool --test-sign: %d\n%s", code, out)
		}
		mustMatch(t, "--test-sign", out, `Verifying against public key in the token\.\.\. ok`)
		t.Logf("p11tool --test-sign:\n%s", out)
	})

	t.Run("NSS", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "stm3")
		p := newP11(t, module, card.Reader())
		db := "sql:" + filepath.Join(p.home, "nssdb")
		os.Mkdir(filepath.Join(p.home, "nssdb"), 0o700)
		p.mustRun("certutil", "-N", "-d", db, "--empty-password")
		// FRIENDLY (slotFlags=PublicCerts): what browsers need to list the
		// certificate without asking for the PIN (testbench.md §3.8).
		p.mustRun("modutil", "-dbdir", db, "-add", "CIE", "-libfile", module, "-mechanisms", "FRIENDLY", "-force")
		// modutil exits 32 over the empty second reader ("Unable to get
		// information about token"): that slot has no token, as it should.
		out, _ := p.run("modutil", "-dbdir", db, "-list", "CIE")
		mustMatch(t, "modutil -list", out, `Token Name: CIE \d{12}\s*\n`)
		mustMatch(t, "modutil -list", out, `Slot Mechanism Flags: FRIENDLY`)
		mustMatch(t, "modutil -list", out, `Access: NOT Write Protected`)
		p.pair()
		out = p.mustRun("certutil", "-L", "-d", db, "-h", "MARIO ROSSI")
		// "u,u,u": NSS found the public key with the certificate's CKA_ID, so
		// it is a user certificate, usable for client authentication.
		mustMatch(t, "certutil -L", out, `MARIO ROSSI:CIE Authentication\s+u,u,u`)
		if tries, _ := card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("listing certificates touched the PIN: %s", tries)
		}
	})

	t.Run("OpenSSL engine TLS client authentication", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "actalis")
		p := newP11(t, module, card.Reader())
		p.pair()
		st, err := ciesim.TestState()
		if err != nil {
			t.Fatal(err)
		}
		caFile := p.file("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.CACert.Raw}))
		certFile := p.file("client.pem", certPEM)
		serverKey, serverCert := filepath.Join(p.home, "server.key"), filepath.Join(p.home, "server.crt")
		p.mustRun("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1",
			"-keyout", serverKey, "-out", serverCert)
		cnf := p.file("openssl.cnf", []byte(`openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so
MODULE_PATH = `+module+`
init = 0
`))
		port := freePort(t)
		srv := exec.Command("openssl", "s_server", "-accept", "127.0.0.1:"+port, "-cert", serverCert, "-key", serverKey,
			"-CAfile", caFile, "-Verify", "1", "-www",
			// PKCS#1 v1.5 only: the card does not do PSS, and TLS 1.3 wants it.
			"-tls1_2", "-client_sigalgs", "RSA+SHA256:RSA+SHA384:RSA+SHA512")
		var srvOut bytes.Buffer
		srv.Stdout, srv.Stderr = &srvOut, &srvOut
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
		waitListening(t, port)

		key := "pkcs11:token=MARIO%20ROSSI;object=CIE%20Authentication;type=private;pin-value=" + defaultPIN
		cmd := exec.Command("openssl", "s_client", "-connect", "127.0.0.1:"+port, "-CAfile", serverCert,
			"-engine", "pkcs11", "-keyform", "engine", "-key", key, "-cert", certFile, "-quiet")
		cmd.Env = append(p.env(), "OPENSSL_CONF="+cnf)
		cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
		done := make(chan struct{})
		var out []byte
		go func() { out, _ = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("s_client hung:\n%s\nserver:\n%s", out, srvOut.String())
		}
		page := string(out)
		mustMatch(t, "s_server page", page, `Peer signature type: RSA\n`)
		mustMatch(t, "s_server page", page, `Client certificate`)
		mustMatch(t, "s_server page", page, `Subject: .*CN\s*=\s*RSSMRA80A01H501U\\?/\d{12}`)
	})

	t.Run("C harness: initialisation, interfaces, fork, finalize", func(t *testing.T) {
		harness := buildHarness(t)
		p := newP11(t, module, "")
		out, code := p.run(harness, "abi", module)
		if code != 0 || strings.Contains(out, "FAIL") {
			t.Fatalf("p11harness abi exited %d:\n%s", code, out)
		}
		if n := strings.Count(out, "ok "); n < 40 {
			t.Fatalf("only %d checks ran:\n%s", n, out)
		}
	})

	t.Run("C harness: 16 threads x 50 signatures", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "gemalto2")
		p := newP11(t, module, card.Reader())
		p.pair()
		harness := buildHarness(t)
		start := time.Now()
		out, code := p.run(harness, "sign", module, card.Reader(), defaultPIN, "16", "50")
		if code != 0 {
			t.Fatalf("p11harness sign exited %d:\n%s", code, lastLines(out, 20))
		}
		if n := verifySignatures(t, out, holder); n != 800 {
			t.Fatalf("%d signatures, want 800", n)
		}
		t.Logf("800 signatures from 16 threads over shared and separate sessions in %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("C harness: two processes at once", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "bit4id")
		p := newP11(t, module, card.Reader())
		p.pair()
		harness := buildHarness(t)
		type result struct {
			out  string
			code int
		}
		results := make(chan result, 2)
		for range 2 {
			go func() {
				// The pauses between signatures let the other process in:
				// pcsc-lite retries a waiting SCardBeginTransaction every
				// 100 ms, so a process signing back to back would have the
				// card to itself.
				out, code := p.run(harness, "sign", module, card.Reader(), defaultPIN, "2", "10", "relogin", "150")
				results <- result{out, code}
			}()
		}
		total, relogins := 0, 0
		for range 2 {
			r := <-results
			if r.code != 0 {
				t.Fatalf("a process failed (exit %d):\n%s", r.code, lastLines(r.out, 20))
			}
			total += verifySignatures(t, r.out, holder)
			var n int
			fmt.Sscanf(regexp.MustCompile(`relogins \d+`).FindString(r.out), "relogins %d", &n)
			relogins += n
		}
		if total != 40 {
			t.Fatalf("%d signatures, want 40", total)
		}
		t.Logf("logins repeated after the other process took the card: %d", relogins)
		if relogins == 0 {
			t.Fatal("the processes never disturbed each other: the test did not exercise the recovery")
		}
		// Each process broke the other's secure channel now and then; they
		// logged in again. No PIN try was ever spent.
		if tries, _ := card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("after two processes: %s", tries)
		}
	})

	t.Run("timings", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "gemalto")
		p := newP11(t, module, card.Reader())
		p.pair()
		harness := buildHarness(t)
		for _, latency := range []string{"0ms", "20ms"} {
			if ans, err := card.Control("latency " + latency); err != nil || ans != "ok" {
				t.Fatalf("latency %s: %q %v", latency, ans, err)
			}
			for _, st := range p.steps(harness, card) {
				t.Logf("latency %-4s %-42s %3d APDUs %8v", latency, st.name, st.apdus, st.took.Round(100*time.Microsecond))
				if st.name == "further C_Sign" && st.apdus > 3 {
					t.Errorf("a further signature cost %d APDUs, want at most 3", st.apdus)
				}
				if st.name == "C_Login (paired card)" && st.apdus > 18 {
					t.Errorf("C_Login cost %d APDUs, want at most 18 (SELECT CIE, DH, DAPP, VERIFY)", st.apdus)
				}
				if strings.HasPrefix(st.name, "C_Initialize") && st.apdus != 0 {
					t.Errorf("start-up with a paired card cost %d APDUs, want 0", st.apdus)
				}
			}
		}
	})
}

// harnessSource is p11harness.c: it drives the module from C for what
// pkcs11-tool cannot check (C_Initialize rules, interfaces, fork,
// C_Finalize during a wait, threads, timings).
const harnessSource = `// p11harness: drives libcie-pkcs11 from C, as browsers and OpenSSL do, for
// what pkcs11-tool cannot check: the C_Initialize rules, the interfaces,
// fork, C_Finalize during a blocking wait, many threads, timings.
//
//   p11harness abi   MODULE
//   p11harness sign  MODULE READER PIN THREADS COUNT [relogin [PAUSE_MS]]
//   p11harness steps MODULE READER PIN
#define CK_PTR *
#define CK_DEFINE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#define NULL_PTR 0
#include "pkcs11.h"
#include "pkcs11_3_0.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define EXPECT(what, got, want)                                                           \
	do {                                                                                  \
		CK_RV g_ = (got), w_ = (want);                                                    \
		if (g_ == w_)                                                                     \
			printf("ok %s\n", what);                                                      \
		else {                                                                            \
			printf("FAIL %s: got 0x%lx, want 0x%lx\n", what, (unsigned long)g_, (unsigned long)w_); \
			failures++;                                                                   \
		}                                                                                 \
	} while (0)

static void *lib;
static CK_FUNCTION_LIST_3_0_PTR p11;

static void load(const char *path) {
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		printf("FAIL dlopen: %s\n", dlerror());
		exit(100);
	}
	CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
	CK_INTERFACE_PTR iface;
	if (!gi || gi(NULL, NULL, &iface, 0) != CKR_OK) {
		printf("FAIL C_GetInterface\n");
		exit(100);
	}
	p11 = (CK_FUNCTION_LIST_3_0_PTR)iface->pFunctionList;
}

static CK_RV fake_create(CK_VOID_PTR_PTR m) { *m = malloc(1); return CKR_OK; }
static CK_RV fake_destroy(CK_VOID_PTR m) { free(m); return CKR_OK; }
static CK_RV fake_lock(CK_VOID_PTR m) { return CKR_OK; }
static CK_RV fake_unlock(CK_VOID_PTR m) { return CKR_OK; }

static void *blocking_wait(void *arg) {
	CK_SLOT_ID slot;
	CK_RV rv;
	// Other tests insert and remove cards in the shared pcscd: a real slot
	// event returns CKR_OK, so wait again until C_Finalize ends the wait.
	do {
		rv = p11->C_WaitForSlotEvent(0, &slot, NULL);
	} while (rv == CKR_OK);
	*(CK_RV *)arg = rv;
	return NULL;
}

static int abi(const char *path) {
	load(path);
	CK_C_GetInterfaceList gil = (CK_C_GetInterfaceList)dlsym(lib, "C_GetInterfaceList");
	CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	CK_ULONG n = 0;
	EXPECT("C_GetInterfaceList count", gil(NULL, &n), CKR_OK);
	EXPECT("two interfaces", n, 2);
	CK_INTERFACE list[2];
	n = 1;
	EXPECT("C_GetInterfaceList short buffer", gil(list, &n), CKR_BUFFER_TOO_SMALL);
	n = 2;
	EXPECT("C_GetInterfaceList", gil(list, &n), CKR_OK);
	EXPECT("interface 0 name", strcmp((char *)list[0].pInterfaceName, "PKCS 11"), 0);
	EXPECT("interface 0 is 3.0", ((CK_VERSION *)list[0].pFunctionList)->major, 3);
	EXPECT("interface 1 is 2.40", ((CK_VERSION *)list[1].pFunctionList)->minor, 40);
	EXPECT("interfaces are not fork-safe", list[0].flags | list[1].flags, 0);

	CK_INTERFACE_PTR ip;
	CK_VERSION v240 = {2, 40}, v30 = {3, 0}, v220 = {2, 20};
	EXPECT("C_GetInterface default", gi(NULL, NULL, &ip, 0), CKR_OK);
	EXPECT("default is 3.0", ((CK_VERSION *)ip->pFunctionList)->major, 3);
	EXPECT("C_GetInterface 2.40", gi((CK_UTF8CHAR_PTR) "PKCS 11", &v240, &ip, 0), CKR_OK);
	EXPECT("2.40 requested", ((CK_VERSION *)ip->pFunctionList)->minor, 40);
	EXPECT("C_GetInterface 3.0", gi((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &ip, 0), CKR_OK);
	EXPECT("C_GetInterface 2.20", gi((CK_UTF8CHAR_PTR) "PKCS 11", &v220, &ip, 0), CKR_ARGUMENTS_BAD);
	EXPECT("C_GetInterface other name", gi((CK_UTF8CHAR_PTR) "Vendor", NULL, &ip, 0), CKR_ARGUMENTS_BAD);
	EXPECT("C_GetInterface fork-safe", gi(NULL, NULL, &ip, CKF_INTERFACE_FORK_SAFE), CKR_ARGUMENTS_BAD);
	EXPECT("C_GetInterface NULL", gi(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
	CK_FUNCTION_LIST_PTR fl;
	EXPECT("C_GetFunctionList", gfl(&fl), CKR_OK);
	EXPECT("C_GetFunctionList is 2.40", fl->version.minor, 40);
	EXPECT("tables share entry points", fl->C_Sign == p11->C_Sign && fl->C_WaitForSlotEvent == p11->C_WaitForSlotEvent, 1);

	CK_INFO info;
	EXPECT("C_GetInfo before C_Initialize", p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CK_C_INITIALIZE_ARGS a;
	memset(&a, 0, sizeof a);
	a.pReserved = &a;
	EXPECT("pReserved set", p11->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	memset(&a, 0, sizeof a);
	a.CreateMutex = fake_create;
	EXPECT("one mutex callback", p11->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	a.DestroyMutex = fake_destroy;
	a.LockMutex = fake_lock;
	a.UnlockMutex = fake_unlock;
	EXPECT("callbacks without OS locking", p11->C_Initialize(&a), CKR_CANT_LOCK);
	a.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS; // what NSS passes
	EXPECT("NSS arguments", p11->C_Initialize(&a), CKR_OK);
	EXPECT("C_Initialize twice", p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	EXPECT("C_GetInfo", p11->C_GetInfo(&info), CKR_OK);
	EXPECT("Cryptoki 3.0", info.cryptokiVersion.major, 3);
	EXPECT("C_GetInfo NULL", p11->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	EXPECT("C_GetSlotList NULL count", p11->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT("C_OpenSession NULL handle", p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT("C_Login NULL PIN", p11->C_Login(1, CKU_USER, NULL, 8), CKR_ARGUMENTS_BAD);
	EXPECT("C_CloseSession bad handle", p11->C_CloseSession(0x7777), CKR_SESSION_HANDLE_INVALID);
	EXPECT("C_GetTokenInfo bad slot", p11->C_GetTokenInfo(0x7777, (CK_TOKEN_INFO_PTR)&info), CKR_SLOT_ID_INVALID);
	CK_BYTE buf[8];
	EXPECT("C_GenerateRandom", p11->C_GenerateRandom(1, buf, 8), CKR_RANDOM_NO_RNG);
	EXPECT("C_EncryptInit", p11->C_EncryptInit(1, NULL, 0), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT("C_MessageSignInit", p11->C_MessageSignInit(1, NULL, 0), CKR_FUNCTION_NOT_SUPPORTED);

	// fork: the child must not enter the Go runtime.
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(10); // a hang in the child is a failure, not a stuck test
		int bad = 0;
		if (p11->C_GetInfo(&info) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 1;
		if (p11->C_Initialize(NULL) != CKR_FUNCTION_FAILED) bad |= 2;
		if (p11->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 4;
		_exit(bad);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	EXPECT("forked child refused without hanging", WIFEXITED(status) ? WEXITSTATUS(status) : 0x100 + WTERMSIG(status), 0);
	EXPECT("parent still works after fork", p11->C_GetInfo(&info), CKR_OK);

	// C_Finalize ends a blocking C_WaitForSlotEvent in another thread.
	CK_RV waited = 0xFFFF;
	pthread_t th;
	pthread_create(&th, NULL, blocking_wait, &waited);
	usleep(200 * 1000);
	EXPECT("C_Finalize non-NULL", p11->C_Finalize(&a), CKR_ARGUMENTS_BAD);
	EXPECT("C_Finalize", p11->C_Finalize(NULL), CKR_OK);
	pthread_join(th, NULL);
	EXPECT("blocked wait ended by C_Finalize", waited, CKR_CRYPTOKI_NOT_INITIALIZED);
	EXPECT("C_Finalize twice", p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

	// dlclose does not unload a Go library (NODELETE); it works again.
	dlclose(lib);
	load(path);
	EXPECT("C_Initialize after dlclose/dlopen", p11->C_Initialize(NULL), CKR_OK);
	EXPECT("C_Finalize again", p11->C_Finalize(NULL), CKR_OK);
	return failures;
}

// ---- signatures ----

static CK_SLOT_ID find_slot(const char *reader) {
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	if (p11->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) return (CK_SLOT_ID)-1;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_SLOT_INFO si;
		if (p11->C_GetSlotInfo(slots[i], &si) == CKR_OK && strncmp((char *)si.slotDescription, reader, strlen(reader)) == 0) return slots[i];
	}
	return (CK_SLOT_ID)-1;
}

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s) {
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG n = 0;
	p11->C_FindObjectsInit(s, &t, 1);
	p11->C_FindObjects(s, &h, 1, &n);
	p11->C_FindObjectsFinal(s);
	return n == 1 ? h : 0;
}

static const char *pin;
static int count, relogin, pause_ms;
static CK_SESSION_HANDLE shared;
static CK_SLOT_ID slot;
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER, out_mu = PTHREAD_MUTEX_INITIALIZER, login_mu = PTHREAD_MUTEX_INITIALIZER;
static int relogins, errors;

static CK_RV login(CK_SESSION_HANDLE s) {
	CK_RV rv = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

static CK_RV sign_once(CK_SESSION_HANDLE s, const char *msg, CK_BYTE *sig, CK_ULONG *n) {
	CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
	CK_OBJECT_HANDLE key = find_key(s);
	if (key == 0) return CKR_USER_NOT_LOGGED_IN; // logged out: the private key is hidden
	CK_RV rv = p11->C_SignInit(s, &m, key);
	if (rv != CKR_OK) return rv;
	*n = 512;
	return p11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), sig, n);
}

static void *worker(void *arg) {
	long id = (long)arg;
	CK_SESSION_HANDLE s = shared;
	int own = id % 2;
	if (own && p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
		__atomic_add_fetch(&errors, 1, __ATOMIC_SEQ_CST);
		return NULL;
	}
	for (int i = 0; i < count; i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "thread %ld message %d", id, i);
		CK_BYTE sig[512];
		CK_ULONG n;
		CK_RV rv;
		for (int attempt = 0;; attempt++) {
			if (!own) pthread_mutex_lock(&shared_mu);
			rv = sign_once(s, msg, sig, &n);
			if (!own) pthread_mutex_unlock(&shared_mu);
			if (rv != CKR_USER_NOT_LOGGED_IN || !relogin || attempt == 100) break;
			// Another process took the card's secure channel: log in again.
			pthread_mutex_lock(&login_mu);
			if (login(shared) == CKR_OK) relogins++;
			pthread_mutex_unlock(&login_mu);
		}
		pthread_mutex_lock(&out_mu);
		if (rv != CKR_OK) {
			printf("error %s: 0x%lx\n", msg, (unsigned long)rv);
			errors++;
		} else {
			printf("sig %s|", msg);
			for (CK_ULONG j = 0; j < n; j++) printf("%02x", sig[j]);
			printf("\n");
		}
		pthread_mutex_unlock(&out_mu);
		if (pause_ms) usleep(pause_ms * 1000); // lets another process take the card
	}
	if (own) p11->C_CloseSession(s);
	return NULL;
}

static int init_and_login(const char *path, const char *reader) {
	load(path);
	CK_C_INITIALIZE_ARGS a;
	memset(&a, 0, sizeof a);
	a.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
	if (p11->C_Initialize(&a) != CKR_OK) return 1;
	slot = find_slot(reader);
	if (slot == (CK_SLOT_ID)-1) {
		printf("error no slot for %s\n", reader);
		return 1;
	}
	CK_TOKEN_INFO ti;
	if (p11->C_GetTokenInfo(slot, &ti) != CKR_OK) return 1;
	return 0;
}

static int sign(const char *path, const char *reader, int threads) {
	if (init_and_login(path, reader)) return 1;
	if (p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &shared) != CKR_OK) return 1;
	CK_RV rv = login(shared);
	if (rv != CKR_OK) {
		printf("error login 0x%lx\n", (unsigned long)rv);
		return 1;
	}
	pthread_t th[64];
	for (long i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, (void *)i);
	for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
	printf("relogins %d\n", relogins);
	p11->C_Finalize(NULL);
	return errors != 0;
}

// ---- timings ----

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void step(const char *name, long long t0, CK_RV rv) {
	printf("step %s %lld 0x%lx\n", name, now_ns() - t0, (unsigned long)rv);
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof line, stdin)) exit(2); // the test reads the card's counters meanwhile
}

static int steps(const char *path, const char *reader) {
	long long t0 = now_ns();
	CK_RV rv = init_and_login(path, reader) ? CKR_GENERAL_ERROR : CKR_OK;
	step("init", t0, rv);
	t0 = now_ns();
	CK_SESSION_HANDLE s;
	rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) rv = login(s);
	step("login", t0, rv);
	CK_BYTE sig[512];
	CK_ULONG n;
	t0 = now_ns();
	rv = sign_once(s, "first", sig, &n);
	step("sign1", t0, rv);
	t0 = now_ns();
	rv = sign_once(s, "second", sig, &n);
	step("sign2", t0, rv);
	p11->C_Finalize(NULL);
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "abi") == 0) return abi(argv[2]);
	if (argc >= 7 && strcmp(argv[1], "sign") == 0) {
		pin = argv[4];
		count = atoi(argv[6]);
		relogin = argc >= 8 && strcmp(argv[7], "relogin") == 0;
		pause_ms = argc >= 9 ? atoi(argv[8]) : 0;
		return sign(argv[2], argv[3], atoi(argv[5]));
	}
	if (argc >= 5 && strcmp(argv[1], "steps") == 0) {
		pin = argv[4];
		return steps(argv[2], argv[3]);
	}
	fprintf(stderr, "usage: p11harness abi MODULE | sign MODULE READER PIN THREADS COUNT [relogin [PAUSE_MS]] | steps MODULE READER PIN\n");
	return 2;
}
`

// buildHarness compiles p11harness against the module's headers.
func buildHarness(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "p11harness.c")
	if err := os.WriteFile(src, []byte(harnessSource), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "p11harness")
	include := filepath.Join(testbench.ModuleRoot(t), "cmd", "cie-pkcs11", "include")
	if out, err := exec.Command("gcc", "-Wall", "-O2", "-I", include, "-o", bin, src, "-ldl", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("compiling p11harness: %v\n%s", err, out)
	}
	return bin
}

// verifySignatures checks every "sig MESSAGE|HEX" line against the
// certificate's key (SHA256-RSA-PKCS) and returns how many there were.
func verifySignatures(t *testing.T, out string, cert *x509.Certificate) int {
	t.Helper()
	pub := cert.PublicKey.(*rsa.PublicKey)
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "error") {
			t.Errorf("harness: %s", line)
		}
		msg, sigHex, ok := strings.Cut(strings.TrimPrefix(line, "sig "), "|")
		if !ok || !strings.HasPrefix(line, "sig ") {
			continue
		}
		sig, err := hex.DecodeString(sigHex)
		d := sha256.Sum256([]byte(msg))
		if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig) != nil {
			t.Errorf("the signature of %q does not verify", msg)
		}
		n++
	}
	return n
}

type step struct {
	name  string
	apdus int
	took  time.Duration
}

// steps runs p11harness steps and reads the card's APDU counter after
// each step (the harness waits for a line on stdin between steps).
func (p *p11) steps(harness string, card *testbench.Card) []step {
	t := p.t
	t.Helper()
	names := map[string]string{
		"init":  "C_Initialize+C_GetSlotList+C_GetTokenInfo",
		"login": "C_Login (paired card)",
		"sign1": "first C_Sign",
		"sign2": "further C_Sign",
	}
	cmd := exec.Command(harness, "steps", p.module, card.Reader(), defaultPIN)
	cmd.Env = p.env()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if ans, err := card.Control("stats reset"); err != nil || ans != "ok" { // before the process: its start-up counts
		t.Fatalf("stats reset: %q %v", ans, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	sc := bufio.NewScanner(stdout)
	var out []step
	for sc.Scan() {
		var name string
		var ns int64
		var rv uint
		if _, err := fmt.Sscanf(sc.Text(), "step %s %d 0x%x", &name, &ns, &rv); err != nil {
			t.Fatalf("harness: %q", sc.Text())
		}
		if rv != 0 {
			t.Fatalf("step %s failed with CK_RV 0x%x", name, rv)
		}
		stats, err := card.Control("stats")
		if err != nil {
			t.Fatal(err)
		}
		var apdus int
		fmt.Sscanf(stats, "apdus=%d", &apdus)
		card.Control("stats reset")
		out = append(out, step{names[name], apdus, time.Duration(ns)})
		fmt.Fprintln(stdin)
	}
	if len(out) != 4 {
		t.Fatalf("harness ran %d steps", len(out))
	}
	return out
}

// pair logs in once, which caches the certificate: from then on the
// certificate and public key are visible without a PIN.
func (p *p11) pair() {
	p.t.Helper()
	p.tool("--login", "--pin", defaultPIN, "-O")
}

// mustRun runs a program and wants exit code 0.
func (p *p11) mustRun(name string, args ...string) string {
	p.t.Helper()
	out, code := p.run(name, args...)
	if code != 0 {
		p.t.Fatalf("%s %q exited %d:\n%s", name, args, code, out)
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func waitListening(t *testing.T, port string) {
	t.Helper()
	for range 100 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %s", port)
}
