package e2e

import (
	"bytes"
	"context"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/sm"
)

// Secrets of TestSecretsNeverWritten: distinctive values, so that a match
// in a log or a file cannot be a coincidence with the defaults that other
// data (ID Servizi, serial numbers) might contain.
const (
	secPIN      = "48151623" // the card's PIN at the start
	secPUK      = "90210377"
	secPINCLI   = "27182818" // set by cie pin change
	secPINUnbl  = "31415926" // set by cie pin unblock
	secPINSet   = "57721566" // set by C_SetPIN
	secPINInit  = "16180339" // set by C_InitPIN
	secWrongPIN = "11223344"
)

// TestSecretsNeverWritten runs every flow of the CLI and the module with
// logging at its most verbose (cie -v, CIE_PKCS11_LOG, cie-sim -v), then
// searches the logs, the certificate cache and every file written under
// the private HOME, XDG and TMPDIR for the PINs, the PUK and the holder's
// private key, in the forms a careless log would use. pcscd --debug --apdu
// logs APDUs by design and is not searched. It also checks that the cache
// is 0600 files in a 0700 directory.
func TestSecretsNeverWritten(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	module := buildModule(t, t.TempDir())
	cli := testbench.BuildBinary(t, "./cmd/cie")
	card := bench.StartCard(t, "--family", "gemalto2", "-v", "--pin", secPIN, "--puk", secPUK)
	simLog := simLogPath(t)
	reader := card.Reader()
	p := newP11(t, module, reader)
	home := p.home
	logs := filepath.Join(home, "logs")
	tmp := filepath.Join(home, "tmp")
	for _, d := range []string{logs, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env := append(p.env(), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_STATE_HOME="+filepath.Join(home, ".local", "state"), "XDG_RUNTIME_DIR="+filepath.Join(home, "run"), "TMPDIR="+tmp)
	step := 0
	run := func(want int, stdin, name string, args ...string) string {
		t.Helper()
		step++
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env, cmd.Dir = env, home
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		// Everything a program printed is a log too: keep it with the others.
		logName := fmt.Sprintf("%02d-%s.log", step, filepath.Base(name))
		if werr := os.WriteFile(filepath.Join(logs, logName), out, 0o600); werr != nil {
			t.Fatal(werr)
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		if code != want {
			t.Fatalf("%s %q exited %d, want %d:\n%s", filepath.Base(name), args, code, want, out)
		}
		return string(out)
	}
	cieRun := func(want int, stdin string, args ...string) string {
		t.Helper()
		return run(want, stdin, cli, append([]string{"-v", "--reader", reader}, args...)...)
	}
	tool := func(args ...string) string {
		t.Helper()
		return run(0, "", "pkcs11-tool", append([]string{"--module", module, "--slot-description", reader}, args...)...)
	}
	doc := filepath.Join(home, "lettera.txt")
	if err := os.WriteFile(doc, []byte("Egregio Sindaco,\nchiedo il rinnovo.\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The CLI, every command that touches a secret.
	cieRun(0, "", "status")
	cieRun(0, secPIN+"\n", "--pin-stdin", "cert", "-o", filepath.Join(home, "cert.pem"))
	cieRun(0, secPIN+"\n", "--pin-stdin", "pair")
	cieRun(0, secPIN+"\n", "--pin-stdin", "sign", doc)
	cieRun(0, secPIN+"\n"+secPINCLI+"\n", "--pin-stdin", "pin", "change")
	for _, code := range []int{6, 6, 7} { // wrong PIN, wrong PIN, blocked
		cieRun(code, secWrongPIN+"\n", "--pin-stdin", "cert")
	}
	cieRun(0, secPUK+"\n"+secPINUnbl+"\n", "--pin-stdin", "pin", "unblock")
	cieRun(0, "", "status")

	// The module: login, signature, C_SetPIN, C_InitPIN as the SO.
	tool("--login", "--pin", secPINUnbl, "-O")
	tool("--login", "--pin", secPINUnbl, "--sign", "-m", "SHA256-RSA-PKCS", "--input-file", doc, "--output-file", filepath.Join(home, "doc.sig"))
	tool("--login", "--pin", secPINUnbl, "--change-pin", "--new-pin", secPINSet)
	tool("--login", "--login-type", "so", "--so-pin", secPUK, "--init-pin", "--new-pin", secPINInit)
	tool("--login", "--pin", secPINInit, "-O")
	wantTries(t, card, "pin=3 puk=10", "after every flow")

	// The logs exist and are verbose: a test that searched empty files
	// would prove nothing.
	for path, want := range map[string]string{
		p.log:  `msg="cie: establishing secure messaging"`,
		simLog: `msg=apdu cmd="0C 20 00 82 `,
	} {
		if !regexp.MustCompile(want).MatchString(readFile(t, path)) {
			t.Fatalf("%s lacks %q: the flows did not log as expected", path, want)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(logs, "01-cie.log")), "level=DEBUG") {
		t.Fatal("cie -v wrote no debug record")
	}

	// Search everything written.
	needles := secretNeedles(t, []string{secPIN, secPUK, secPINCLI, secPINUnbl, secPINSet, secPINInit})
	files := []string{simLog}
	filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(home, f)
		names = append(names, fmt.Sprintf("%s (%d bytes)", rel, len(b)))
		if f == doc {
			continue // the test's own input
		}
		for _, n := range needles {
			if bytes.Contains(b, n.value) {
				t.Errorf("%s contains %s", f, n.what)
			}
		}
	}
	t.Logf("searched %d files for %d forms of the secrets: %s", len(files), len(needles), strings.Join(names, ", "))

	// The certificate cache: only the certificate, 0600 files in a 0700
	// directory.
	dir := filepath.Join(home, ".config", "cie-desktop", "certs")
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("no certificate cache at %s: %v", dir, err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("cache directory %s has mode %v, want 0700", dir, st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("cache directory holds %d entries, want 1 (one card, no leftover temporary file)", len(entries))
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("cache file %s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
}

// needle is one form of a secret to look for.
type needle struct {
	what  string
	value []byte
}

// secretNeedles returns the forms in which a secret could leak: the PINs
// as typed, as hex (lower, upper, APDU-trace style), as a Go byte slice
// printed with %v, in Base64; the holder's private key (key 0x81 of the
// simulated card) as raw bytes, hex, decimal and PEM.
func secretNeedles(t *testing.T, pins []string) []needle {
	t.Helper()
	var out []needle
	for _, p := range pins {
		b := []byte(p)
		spaced := strings.TrimSpace(fmt.Sprintf("% X", b))
		for _, f := range []struct{ how, v string }{
			{"as text", p}, {"as hex", hex.EncodeToString(b)}, {"as HEX", strings.ToUpper(hex.EncodeToString(b))},
			{"as spaced hex", spaced}, {"as a Go byte slice", fmt.Sprint(b)}, {"in Base64", base64.StdEncoding.EncodeToString(b)},
		} {
			out = append(out, needle{fmt.Sprintf("the secret %s %s", p, f.how), []byte(f.v)})
		}
	}
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatal(err)
	}
	k := st.HolderKey
	parts := map[string][]byte{"d": k.D.Bytes(), "p": k.Primes[0].Bytes(), "q": k.Primes[1].Bytes()}
	for name, v := range parts {
		h := hex.EncodeToString(v)
		out = append(out,
			needle{"the private key's " + name + " (raw bytes)", v[8:40]},
			needle{"the private key's " + name + " (hex)", []byte(h[16:80])},
			needle{"the private key's " + name + " (HEX)", []byte(strings.ToUpper(h[16:80]))},
		)
	}
	out = append(out, needle{"the private key's d (decimal)", []byte(k.D.String()[10:60])})
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(k))
	pkcs8der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := base64.StdEncoding.EncodeToString(pkcs8der)
	out = append(out,
		needle{"the private key (PKCS#1 PEM)", []byte(pkcs1[640:704])},
		needle{"the private key (PKCS#8 PEM)", []byte(pkcs8[640:704])},
	)
	return out
}

// TestSecretTypesRedacted prints every type that holds a secret in every
// way a log or an error message could: fmt's verbs, log/slog's text and
// JSON handlers, nested in a struct. None may show the secret.
func TestSecretTypesRedacted(t *testing.T) {
	kEnc := bytes.Repeat([]byte{0xA7}, sm.KeySize)
	kMAC := bytes.Repeat([]byte{0x5B}, sm.KeySize)
	session := sm.NewSession(kEnc, kMAC, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	sig := bytes.Repeat([]byte{0xC3}, 256)
	key, err := certcache.KeyFromSignature(sig)
	if err != nil {
		t.Fatal(err)
	}
	s := sha512.Sum512(sig)
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatal(err)
	}
	cfg := ciesim.Config{Family: "nxp", State: st, PIN: []byte(secPIN), PUK: []byte(secPUK)}
	simCard, err := ciesim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A card after a PIN verification: what the host keeps of the session.
	// Its transport is a function, so that printing the host's card does
	// not print the simulator behind it (which holds its PIN by design).
	card, err := cie.Open(context.Background(), funcTransport(simCard.Transmit), simCard.ATR(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := card.VerifyPIN(context.Background(), []byte(secPIN)); err != nil {
		t.Fatal(err)
	}

	secrets := map[string][][]byte{
		"sm.Session":      {kEnc, kMAC},
		"certcache.Key":   {s[:32], s[32:48], s[48:64]},
		"ciesim.State":    {st.HolderKey.D.Bytes()[:16], st.ChipKey.D.Bytes()[:16], st.ServiziKey.D.Bytes()[:16]},
		"ciesim.Config":   {[]byte(secPIN), []byte(secPUK)},
		"*ciesim.Card":    {[]byte(secPIN), []byte(secPUK)},
		"*cie.Card":       {[]byte(secPIN)},
		"*sm.Transport":   {kEnc, kMAC},
		"[]*sm.Session":   {kEnc, kMAC},
		"struct{Session}": {kEnc, kMAC},
	}
	values := map[string]any{
		"sm.Session":      session,
		"certcache.Key":   key,
		"ciesim.State":    st,
		"ciesim.Config":   cfg,
		"*ciesim.Card":    simCard,
		"*cie.Card":       card,
		"*sm.Transport":   sm.NewTransport(nil, session),
		"[]*sm.Session":   []*sm.Session{session},
		"struct{Session}": struct{ Session *sm.Session }{session},
	}
	for name, v := range values {
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("x", "v", v)
		slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "v", v)
		outs := map[string]string{"fmt.Sprint": fmt.Sprint(v), "slog text": text.String(), "slog JSON": js.String()}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			outs[verb] = fmt.Sprintf(verb, v)
		}
		if b, err := json.Marshal(v); err == nil {
			outs["json.Marshal"] = string(b)
		}
		for how, out := range outs {
			for _, secret := range secrets[name] {
				for _, form := range leakForms(secret) {
					if strings.Contains(out, form) {
						t.Errorf("%s printed with %s shows a secret (%q): %.300s", name, how, form, out)
						break
					}
				}
			}
		}
		if r := fmt.Sprint(v); (name == "sm.Session" || name == "certcache.Key" || name == "ciesim.State" || name == "ciesim.Config") &&
			!strings.Contains(r, "[redacted]") {
			t.Errorf("%s prints %q, want [redacted]", name, r)
		}
	}
}

// funcTransport is an apdu.Transport made of a function.
type funcTransport func(ctx context.Context, cmd []byte) ([]byte, error)

func (f funcTransport) Transmit(ctx context.Context, cmd []byte) ([]byte, error) { return f(ctx, cmd) }

// leakForms are the renderings of a secret that fmt or slog could produce:
// hex (lower and upper), the decimal and hexadecimal element lists of a
// byte array, Base64, and the bytes themselves.
func leakForms(b []byte) []string {
	dec := fmt.Sprint(b[:6])
	return []string{
		string(b), hex.EncodeToString(b[:8]), strings.ToUpper(hex.EncodeToString(b[:8])),
		dec[:len(dec)-1], fmt.Sprintf("%#v", b[:6])[len("[]byte{"):], base64.StdEncoding.EncodeToString(b)[:12],
	}
}

// TestMACsComparedInConstantTime checks the code that verifies MACs and
// reference data: no bytes.Equal, reflect.DeepEqual, string comparison or
// == on a value whose name says it is a MAC, a tag, a PIN or a PUK; and the
// packages that verify MACs use crypto/subtle or crypto/hmac.
func TestMACsComparedInConstantTime(t *testing.T) {
	root := testbench.ModuleRoot(t)
	secretName := regexp.MustCompile(`(?i)mac|^tag$|^pin$|^puk$|^ref$|candidate`)
	fset := token.NewFileSet()
	for _, pkg := range []string{"sm", "certcache", "cie", "pkcs11", "internal/ciesim"} {
		files, _ := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		var constantTime bool
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					name := exprString(n.Fun)
					if name == "subtle.ConstantTimeCompare" || name == "hmac.Equal" {
						constantTime = true
					}
					if name == "bytes.Equal" || name == "reflect.DeepEqual" || name == "bytes.Compare" {
						for _, a := range n.Args {
							if id := lastIdent(a); id != "" && secretNameMatch(secretName, id) {
								t.Errorf("%s: %s(…%s…) compares a secret in variable time", fset.Position(n.Pos()), name, id)
							}
						}
					}
				case *ast.BinaryExpr:
					if n.Op == token.EQL || n.Op == token.NEQ {
						for _, a := range []ast.Expr{n.X, n.Y} {
							if c, ok := a.(*ast.CallExpr); ok && exprString(c.Fun) == "string" && len(c.Args) == 1 {
								if id := lastIdent(c.Args[0]); secretNameMatch(secretName, id) {
									t.Errorf("%s: string(%s) == … compares a secret in variable time", fset.Position(n.Pos()), id)
								}
							}
						}
					}
				}
				return true
			})
		}
		if (pkg == "sm" || pkg == "certcache" || pkg == "internal/ciesim") && !constantTime {
			t.Errorf("%s verifies MACs or PINs without crypto/subtle or crypto/hmac", pkg)
		}
	}
}

func secretNameMatch(re *regexp.Regexp, id string) bool {
	return id != "" && re.MatchString(id) && !strings.EqualFold(id, "magic")
}

// exprString renders a selector or identifier ("bytes.Equal").
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return ""
}

// lastIdent names the variable an argument is made of: x, s.mac, mac[:8],
// mac(…) give x, mac, mac, mac.
func lastIdent(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.SliceExpr:
		return lastIdent(e.X)
	case *ast.IndexExpr:
		return lastIdent(e.X)
	case *ast.CallExpr:
		return lastIdent(e.Fun)
	case *ast.StarExpr:
		return lastIdent(e.X)
	}
	return ""
}
